package sqlite_test

import (
	"context"
	"testing"

	"github.com/posterctl/posterctl/app"
)

func TestDB_CreateUser(t *testing.T) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		db := MustOpenDB(t)
		clock := newClock()
		db.Now = clock.Now
		u := &app.User{Username: "alice_1"}
		if err := db.CreateUser(ctx, u, []byte("hash")); err != nil {
			t.Fatal(err)
		}
		if u.ID == 0 || !u.CreatedAt.Equal(clock.t) {
			t.Fatalf("user = %+v", u)
		}
		got, hash, err := db.FindCredentials(ctx, "ALICE_1")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != u.ID || got.Username != "alice_1" || string(hash) != "hash" || !got.CreatedAt.Equal(clock.t) {
			t.Fatalf("found %+v %q", got, hash)
		}
	})

	t.Run("ErrConflict", func(t *testing.T) {
		db := MustOpenDB(t)
		mustCreateUser(t, db, "alice")
		err := db.CreateUser(ctx, &app.User{Username: "Alice"}, []byte("h"))
		if app.ErrorCode(err) != app.ECONFLICT {
			t.Fatalf("err = %v, want conflict", err)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		db := MustOpenDB(t)
		for _, name := range []string{"", "ab", "with space", "ünïcode", "a-b-c", "abcdefghijklmnopqrstuvwxyz0123456"} {
			err := db.CreateUser(ctx, &app.User{Username: name}, []byte("h"))
			if app.ErrorCode(err) != app.EINVALID {
				t.Errorf("%q: err = %v, want invalid", name, err)
			}
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		db := MustOpenDB(t)
		if _, _, err := db.FindCredentials(ctx, "nobody"); app.ErrorCode(err) != app.ENOTFOUND {
			t.Fatalf("err = %v, want not found", err)
		}
	})
}
