package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app"
	"github.com/posterctl/posterctl/app/sqlite"
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

// storeWithUser opens a store with one user and returns it, its path and
// the user.
func storeWithUser(t *testing.T) (*sqlite.DB, string, *app.User) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "poster.db")
	db := MustOpenDBAt(t, path)
	u := &app.User{Username: "ann"}
	if err := db.CreateUser(context.Background(), u, []byte("x")); err != nil {
		t.Fatal(err)
	}
	return db, path, u
}

// TestDB_WaitsForWriteLock: a write that meets another connection's write
// lock waits for it, and succeeds once it is released, rather than failing;
// a write whose request is cancelled stops waiting.
func TestDB_WaitsForWriteLock(t *testing.T) {
	ctx := context.Background()
	db, path, u := storeWithUser(t)

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

// TestDB_WritersTakeTurns: this process's writes that wait for the write
// connection get it in the order they asked. database/sql alone hands a
// freed connection to a waiter picked at random, which left a post now and
// then waiting twenty times as long as the rest.
func TestDB_WritersTakeTurns(t *testing.T) {
	ctx := context.Background()
	db, path, u := storeWithUser(t)
	release := holdWriteLock(t, path)

	// Each write starts once the one before is waiting: the first for the
	// lock, holding the connection, the others for their turn.
	const n = 12
	ids := make([]int64, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			p, _, err := db.CreatePost(ctx, &app.Post{AuthorID: u.ID, Content: fmt.Sprint("turn ", i)}, "")
			if err == nil {
				ids[i] = p.ID
			}
			errs <- err
		}()
		eventually(t, 10*time.Second, func() error {
			if polling, waiting := writers(); polling != 1 || waiting != i {
				return fmt.Errorf("%d writes polling for the lock and %d waiting for their turn; want 1 and %d", polling, waiting, i)
			}
			return nil
		})
	}
	// A write whose request ends while it waits for its turn leaves the
	// queue, and the writes behind it keep their places.
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() {
		_, _, err := db.CreatePost(cctx, &app.Post{AuthorID: u.ID, Content: "gave up"}, "")
		gaveUp <- err
	}()
	eventually(t, 10*time.Second, func() error {
		if _, waiting := writers(); waiting != n {
			return fmt.Errorf("%d writes waiting for their turn; want %d", waiting, n)
		}
		return nil
	})
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("write cancelled while waiting for its turn: %v, want the context's error", err)
	}
	release()
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < n; i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("posts' ids in the order their writes asked: %v; want them rising", ids)
		}
	}
}

// writers counts this process's writers that hold the write connection
// and poll for the lock, and those waiting for their turn at it.
func writers() (polling, waiting int) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		switch {
		case bytes.Contains(g, []byte("sqlite.retryWhileBusy(")):
			polling++
		case bytes.Contains(g, []byte("[select")) && bytes.Contains(g, []byte("sqlite.(*gen).writeConn(")):
			waiting++
		}
	}
	return polling, waiting
}
