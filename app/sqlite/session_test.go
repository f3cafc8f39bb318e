package sqlite_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app"
)

func TestDB_Session(t *testing.T) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		db := MustOpenDB(t)
		clock := newClock()
		db.Now = clock.Now
		u := mustCreateUser(t, db, "bob")
		s := &app.Session{TokenHash: []byte("token-hash"), UserID: u.ID, ExpiresAt: clock.t.Add(time.Hour)}
		if err := db.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		got, err := db.FindSession(ctx, []byte("token-hash"), clock.t)
		if err != nil {
			t.Fatal(err)
		}
		if got.UserID != u.ID || got.User.Username != "bob" || !got.ExpiresAt.Equal(s.ExpiresAt) || !bytes.Equal(got.TokenHash, s.TokenHash) {
			t.Fatalf("session = %+v user = %+v", got, got.User)
		}
		if err := db.DeleteSession(ctx, s.TokenHash); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindSession(ctx, s.TokenHash, clock.t); app.ErrorCode(err) != app.ENOTFOUND {
			t.Fatalf("after delete: err = %v, want not found", err)
		}
		if err := db.DeleteSession(ctx, s.TokenHash); err != nil {
			t.Fatalf("deleting a missing session: %v", err)
		}
	})

	t.Run("Expired", func(t *testing.T) {
		db := MustOpenDB(t)
		clock := newClock()
		db.Now = clock.Now
		u := mustCreateUser(t, db, "carol")
		old := &app.Session{TokenHash: []byte("old"), UserID: u.ID, ExpiresAt: clock.t.Add(time.Hour)}
		if err := db.CreateSession(ctx, old); err != nil {
			t.Fatal(err)
		}
		if _, err := db.FindSession(ctx, old.TokenHash, clock.t.Add(time.Hour)); app.ErrorCode(err) != app.ENOTFOUND {
			t.Fatalf("at expiry: err = %v, want not found", err)
		}
		// A new login sweeps expired sessions out of the table.
		clock.Add(2 * time.Hour)
		if err := db.CreateSession(ctx, &app.Session{TokenHash: []byte("new"), UserID: u.ID, ExpiresAt: clock.t.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if n := rawQuery[int](t, db.Path, `SELECT count(*) FROM sessions`); n != 1 {
			t.Fatalf("%d sessions stored, want 1", n)
		}
	})
}
