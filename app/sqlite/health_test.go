package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app"
	"github.com/posterctl/posterctl/app/sqlite"
)

// eventually polls cond until it returns nil or the deadline passes.
func eventually(tb testing.TB, d time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

func TestDB_StoreID(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "poster.db")
	a := MustOpenDBAt(t, path)
	id, err := a.StoreID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Fatalf("store id %q, want 32 hex digits", id)
	}
	if raw := rawQuery[string](t, path, `SELECT store_id FROM store_meta`); raw != id {
		t.Fatalf("store id %q, file has %q", id, raw)
	}

	t.Run("MadeForAnOldStore", func(t *testing.T) {
		// A store made before ids existed gets one from migration 0002.
		path := filepath.Join(t.TempDir(), "old.db")
		db := MustOpenDBAt(t, path)
		db.Close()
		raw, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Exec(`DROP TABLE store_meta; DELETE FROM schema_migrations WHERE name LIKE '%0002_store_id.sql'`); err != nil {
			t.Fatal(err)
		}
		raw.Close()
		again := MustOpenDBAt(t, path)
		got, err := again.StoreID(ctx)
		if err != nil || len(got) != 32 {
			t.Fatalf("store id of an old store = %q, %v", got, err)
		}
	})
}

// poster makes users and posts on one store and records every post that
// was acknowledged.
type poster struct {
	db   *sqlite.DB
	user int64

	mu    sync.Mutex
	acked []string
	n503  int
	first time.Time // first refused write
	last  time.Time // last refused write
}

func newPoster(t *testing.T, db *sqlite.DB, name string) *poster {
	u := &app.User{Username: name}
	if err := db.CreateUser(context.Background(), u, []byte("hash")); err != nil {
		t.Fatal(err)
	}
	return &poster{db: db, user: u.ID}
}

// post writes one post and records the outcome; an error other than
// EUNAVAILABLE is returned.
func (p *poster) post(i int) error {
	content := fmt.Sprintf("post %d of user %d", i, p.user)
	_, _, err := p.db.CreatePost(context.Background(), &app.Post{AuthorID: p.user, Content: content}, "")
	p.mu.Lock()
	defer p.mu.Unlock()
	switch app.ErrorCode(err) {
	case "":
		p.acked = append(p.acked, content)
	case app.EUNAVAILABLE:
		now := time.Now()
		if p.first.IsZero() {
			p.first = now
		}
		p.last = now
		p.n503++
	default:
		return err
	}
	return nil
}

// TestDB_Deleted: two stores on one file under write load; the file, its
// WAL and shared-memory index are deleted. One store restores the file from
// its open connection, both move to it, no write fails meanwhile, and every
// acknowledged post is in the file at the path.
func TestDB_Deleted(t *testing.T) {
	// Deleting the main file alone leaves its -wal and -shm at the path;
	// the restore must not let the new file replay them.
	for _, tc := range []struct {
		name  string
		files []string
	}{{"AllFiles", []string{"", "-wal", "-shm"}}, {"MainFileOnly", []string{""}}} {
		t.Run(tc.name, func(t *testing.T) { testDeleted(t, tc.files) })
	}
}

func testDeleted(t *testing.T, suffixes []string) {
	path := filepath.Join(t.TempDir(), "poster.db")
	a := MustOpenDBAt(t, path)
	b := MustOpenDBAt(t, path)
	idBefore, _ := a.StoreID(context.Background())
	posters := []*poster{newPoster(t, a, "alice"), newPoster(t, b, "bob")}

	stop := make(chan struct{})
	errs := make(chan error, len(posters))
	var wg sync.WaitGroup
	for _, p := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				if err := p.post(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	eventually(t, 5*time.Second, func() error {
		for _, p := range posters {
			p.mu.Lock()
			n := len(p.acked)
			p.mu.Unlock()
			if n < 50 {
				return fmt.Errorf("%d posts so far", n)
			}
		}
		return nil
	})
	old, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, suffix := range suffixes {
		if err := os.Remove(path + suffix); err != nil {
			t.Fatal(err)
		}
	}
	// Both stores are back on a new file at the path and take writes.
	eventually(t, 5*time.Second, func() error {
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if os.SameFile(fi, old) {
			return errors.New("still the old file")
		}
		for _, db := range []*sqlite.DB{a, b} {
			if _, err := db.StoreHealth(context.Background()); err != nil {
				return err
			}
		}
		return nil
	})
	// Let a few more writes land on the new file, then stop.
	counts := make([]int, len(posters))
	for i, p := range posters {
		p.mu.Lock()
		counts[i] = len(p.acked)
		p.mu.Unlock()
	}
	eventually(t, 5*time.Second, func() error {
		for i, p := range posters {
			p.mu.Lock()
			n := len(p.acked)
			p.mu.Unlock()
			if n < counts[i]+20 {
				return fmt.Errorf("%d posts since the restore", n-counts[i])
			}
		}
		return nil
	})
	close(stop)
	wg.Wait()
	for range posters {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	if check := rawQuery[string](t, path, `PRAGMA quick_check`); check != "ok" {
		t.Fatalf("quick_check of the restored file: %s", check)
	}
	// The restored file is as private as the one it replaces (perm.go).
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("restored file is mode %04o, want no access for others", fi.Mode().Perm())
	}
	if id := rawQuery[string](t, path, `SELECT store_id FROM store_meta`); id != idBefore {
		t.Fatalf("store id at the path %q, want %q", id, idBefore)
	}
	inFile := map[string]bool{}
	raw, err := sql.Open("sqlite", path+"?_busy_timeout=5000") // its insert below waits out a checkpoint of the watch
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rows, err := raw.Query(`SELECT content FROM posts`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		inFile[c] = true
	}
	rows.Close()
	for _, p := range posters {
		for _, c := range p.acked {
			if !inFile[c] {
				t.Fatalf("acknowledged %q is not in the file at the path", c)
			}
		}
		// A write that comes while the file is restored, or finds it
		// changed under it, waits for the stores to move to the restored
		// file rather than failing (whileMoving).
		if p.n503 > 0 {
			t.Fatalf("%d writes refused over %v, want none", p.n503, p.last.Sub(p.first))
		}
		t.Logf("%d posts acknowledged", len(p.acked))
	}
	// Both stores read the file at the path: the newest post of each is
	// visible through the other.
	for _, db := range []*sqlite.DB{a, b} {
		posts, err := db.FindPosts(context.Background(), app.PostFilter{Limit: len(inFile) + 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(posts) != len(inFile) {
			t.Fatalf("a store reads %d posts, the file has %d", len(posts), len(inFile))
		}
	}
	// And their versions follow the file at the path, so that no cache
	// keeps a page of the deleted file.
	for _, db := range []*sqlite.DB{a, b} {
		v, err := db.Version(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Exec(`INSERT INTO posts (user_id, content, created_at) VALUES (?, 'raw', 0)`, posters[0].user); err != nil {
			t.Fatal(err)
		}
		if again, err := db.Version(context.Background()); err != nil || again == v {
			t.Fatalf("version %d before a commit to the file at the path, %d after (%v)", v, again, err)
		}
	}
}

// TestDB_Replaced: another file at the path makes writes fail with
// EUNAVAILABLE and the health report name the cause, and nothing is written
// into either file.
func TestDB_Replaced(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		make       func(t *testing.T, path string)
	}{
		{"OtherStore", "another store (store id", func(t *testing.T, path string) {
			MustOpenDBAt(t, path).Close()
		}},
		{"NotADatabase", "a file that is not a SQLite database", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(strings.Repeat("random bytes ", 1000)), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			path := filepath.Join(dir, "poster.db")
			db := MustOpenDBAt(t, path)
			alice := newPoster(t, db, "alice")
			other := filepath.Join(dir, "other.db")
			tc.make(t, other)
			if err := os.Rename(other, path); err != nil {
				t.Fatal(err)
			}
			_, err := db.StoreHealth(ctx)
			if app.ErrorCode(err) != app.EUNAVAILABLE || !strings.Contains(err.Error(), "was replaced by "+tc.want) {
				t.Fatalf("StoreHealth = %v, want EUNAVAILABLE naming %q", err, tc.want)
			}
			_, _, err = db.CreatePost(ctx, &app.Post{AuthorID: alice.user, Content: "lost?"}, "")
			if app.ErrorCode(err) != app.EUNAVAILABLE {
				t.Fatalf("write after the replacement = %v, want EUNAVAILABLE", err)
			}
			if tc.name == "OtherStore" {
				if n := rawQuery[int](t, path, `SELECT count(*) FROM posts`); n != 0 {
					t.Fatalf("the other store has %d posts", n)
				}
			}
		})
	}
}

// TestDB_Replaced_WriteChecks: a write that comes before any check still
// refuses, because it checks the file once it holds the write lock.
func TestDB_Replaced_WriteChecks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "poster.db")
	db := MustOpenDBAt(t, path)
	alice := newPoster(t, db, "alice")
	MustOpenDBAt(t, filepath.Join(dir, "other.db")).Close()
	if err := os.Rename(filepath.Join(dir, "other.db"), path); err != nil {
		t.Fatal(err)
	}
	_, _, err := db.CreatePost(ctx, &app.Post{AuthorID: alice.user, Content: "lost?"}, "")
	if app.ErrorCode(err) != app.EUNAVAILABLE {
		t.Fatalf("write after the replacement = %v, want EUNAVAILABLE", err)
	}
	eventually(t, 2*time.Second, func() error {
		_, err := db.StoreHealth(ctx)
		if err == nil {
			return errors.New("still healthy")
		}
		return nil
	})
}
