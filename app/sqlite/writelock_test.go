package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app"
)

// holdWriteLock takes the file's write lock on a connection of its own, as
// another backend's transaction would, and returns its release.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	other.SetMaxOpenConns(1)
	tx, err := other.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A deferred transaction takes the write lock with its first write.
	if _, err := tx.Exec(`UPDATE store_meta SET store_id = store_id`); err != nil {
		t.Fatal(err)
	}
	var done bool
	release = func() {
		if done {
			return
		}
		done = true
		if err := tx.Commit(); err != nil {
			t.Error(err)
		}
		other.Close()
	}
	t.Cleanup(release)
	return release
}

// TestDB_WaitsForWriteLock: a write that meets another connection's write
// lock waits for it, and succeeds once it is released, rather than failing;
// a write whose request is cancelled stops waiting.
func TestDB_WaitsForWriteLock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "poster.db")
	db := MustOpenDBAt(t, path)
	u := &app.User{Username: "ann"}
	if err := db.CreateUser(ctx, u, []byte("x")); err != nil {
		t.Fatal(err)
	}

	t.Run("Released", func(t *testing.T) {
		release := holdWriteLock(t, path)
		held := 100 * time.Millisecond
		timer := time.AfterFunc(held, release)
		defer timer.Stop()
		start := time.Now()
		p, _, err := db.CreatePost(ctx, &app.Post{AuthorID: u.ID, Content: "after the lock"}, "")
		if err != nil {
			t.Fatalf("write after another connection's lock: %v", err)
		}
		if waited := time.Since(start); waited < held/2 {
			t.Fatalf("write done in %v while the lock was held for %v: it did not wait", waited, held)
		}
		if p.ID == 0 {
			t.Fatal("no id")
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		holdWriteLock(t, path)
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, _, err := db.CreatePost(cctx, &app.Post{AuthorID: u.ID, Content: "never"}, "")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("write cancelled while waiting for the lock: %v, want the context's error", err)
		}
	})
}
