package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app"
)

// rawTestDB opens a store with one user and returns it, its path and the
// user's id.
func rawTestDB(t *testing.T) (*DB, string, int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "poster.db")
	db := NewDB(path)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	u := &app.User{Username: "ann"}
	if err := db.CreateUser(context.Background(), u, []byte("x")); err != nil {
		t.Fatal(err)
	}
	return db, path, u.ID
}

// countPosts reads the file with a connection of its own.
func countPosts(t *testing.T, path string) int {
	t.Helper()
	c, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var n int
	if err := c.QueryRow(`SELECT count(*) FROM posts`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// openFiles counts this process's descriptors open on path, or returns 0
// where /proc/self/fd does not list them. SQLite closes a connection's
// descriptor only once no connection of the process has the file open.
func openFiles(t *testing.T, path string) int {
	t.Helper()
	if runtime.GOOS != "linux" {
		return 0
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if dst, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && dst == path {
			n++
		}
	}
	return n
}

// insertThen stores a post inside t and then fails as fail says.
func insertThen(userID int64, fail func(t *wtx) error) func(t *wtx) error {
	return func(t *wtx) error {
		if _, err := t.exec(rawInsertPost, userID, "never stored", millis(time.Now())); err != nil {
			return err
		}
		return fail(t)
	}
}

// TestInRawTx_Failures: whatever ends a write transaction early, nothing of
// it is stored, the write lock is free for the next write, and no
// connection stays open on the file once the store is closed.
func TestInRawTx_Failures(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		fn   func(userID int64) func(t *wtx) error
		// check runs on what inRawTx returned and what it panicked with.
		check func(t *testing.T, err error, panicked any)
		// dropped: the transaction's connection is replaced.
		dropped bool
	}{
		{
			name: "Error",
			fn: func(userID int64) func(t *wtx) error {
				return insertThen(userID, func(*wtx) error { return app.Errorf(app.EUNAUTHORIZED, "not logged in") })
			},
			check: func(t *testing.T, err error, panicked any) {
				if app.ErrorCode(err) != app.EUNAUTHORIZED || panicked != nil {
					t.Fatalf("err = %v, panic = %v; want fn's error", err, panicked)
				}
			},
		},
		{
			// SQLite ends a transaction itself after some failures; the
			// ROLLBACK that follows finds none, which is no failure.
			name: "EndedAlready",
			fn: func(userID int64) func(t *wtx) error {
				return insertThen(userID, func(t *wtx) error {
					if _, err := t.exec(rawRollback); err != nil {
						return err
					}
					return app.Errorf(app.EINVALID, "bad")
				})
			},
			check: func(t *testing.T, err error, panicked any) {
				if app.ErrorCode(err) != app.EINVALID || panicked != nil {
					t.Fatalf("err = %v, panic = %v; want fn's error", err, panicked)
				}
			},
		},
		{
			name: "Panic",
			fn: func(userID int64) func(t *wtx) error {
				return insertThen(userID, func(*wtx) error { panic("boom") })
			},
			check: func(t *testing.T, err error, panicked any) {
				if panicked != "boom" {
					t.Fatalf("err = %v, panic = %v; want the panic passed on", err, panicked)
				}
			},
			dropped: true,
		},
		{
			// A ROLLBACK that fails leaves the connection in a state
			// nobody knows: it is dropped, and closing it ends its
			// transaction.
			name: "RollbackFails",
			fn: func(userID int64) func(t *wtx) error {
				return insertThen(userID, func(t *wtx) error {
					pc := t.st.dc.(driver.ConnPrepareContext)
					bad, err := pc.PrepareContext(t.ctx, `INSERT INTO store_meta (one, store_id) VALUES (1, 'taken')`)
					if err != nil {
						return err
					}
					if err := t.st.s[rawRollback].Close(); err != nil {
						return err
					}
					t.st.s[rawRollback] = bad.(rawStmt)
					return app.Errorf(app.EINVALID, "bad")
				})
			},
			check: func(t *testing.T, err error, panicked any) {
				if !errors.Is(err, errConnLost) || panicked != nil {
					t.Fatalf("err = %v, panic = %v; want errConnLost", err, panicked)
				}
			},
			dropped: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, path, userID := rawTestDB(t)
			dc := db.cur().raw.dc
			var err error
			panicked := func() (v any) {
				defer func() { v = recover() }()
				err = db.inRawTx(ctx, tc.fn(userID))
				return nil
			}()
			tc.check(t, err, panicked)
			if n := countPosts(t, path); n != 0 {
				t.Fatalf("%d posts stored by a failed transaction", n)
			}
			// The next write takes the lock at once (a transaction left
			// open would hold it) and works on whatever connection the
			// pool has now.
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if _, _, err := db.CreatePost(cctx, &app.Post{AuthorID: userID, Content: "after"}, "k"); err != nil {
				t.Fatalf("write after the failed one: %v", err)
			}
			if n := countPosts(t, path); n != 1 {
				t.Fatalf("%d posts stored, want 1", n)
			}
			if replaced := db.cur().raw.dc != dc; replaced != tc.dropped {
				t.Fatalf("connection replaced: %v, want %v", replaced, tc.dropped)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			// A connection dropped with its statements still prepared
			// would be kept open by the driver, with its file.
			if n := openFiles(t, path); n > 0 {
				t.Fatalf("%d descriptors open on the file after Close", n)
			}
		})
	}
}
