package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/posterctl/posterctl/app"
)

// TestDB_Version: the version holds while nothing is committed and changes
// with every commit, whether it came through this store, another store on
// the same file (another backend) or a plain connection; a failed write
// changes nothing.
func TestDB_Version(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "poster.db")
	db := MustOpenDBAt(t, path)
	other := MustOpenDBAt(t, path)
	ver := func() uint64 {
		t.Helper()
		v, err := db.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v := ver()
	if again := ver(); again != v {
		t.Fatalf("version moved from %d to %d with no commit", v, again)
	}
	u := &app.User{Username: "vera"}
	if err := db.CreateUser(ctx, u, []byte("hash")); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{v: true}
	next := func(what string) {
		t.Helper()
		n := ver()
		if seen[n] {
			t.Fatalf("after %s: version %d was returned before", what, n)
		}
		seen[n] = true
		if again := ver(); again != n {
			t.Fatalf("after %s: version moved from %d to %d with no commit", what, n, again)
		}
	}
	next("a commit through this store")
	for range 20 {
		if _, _, err := other.CreatePost(ctx, &app.Post{AuthorID: u.ID, Content: "elsewhere"}, ""); err != nil {
			t.Fatal(err)
		}
		next("a commit through another store")
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`DELETE FROM sessions`); err != nil {
		t.Fatal(err)
	}
	next("a commit through a plain connection")

	if _, _, err := db.CreatePost(ctx, &app.Post{AuthorID: u.ID + 100, Content: "no such author"}, ""); app.ErrorCode(err) != app.ENOTFOUND {
		t.Fatalf("post by a missing author: %v", err)
	}
	n := ver()
	if !seen[n] {
		t.Fatalf("a rolled-back write moved the version to %d", n)
	}
}

// TestDB_Version_Closed: a closed store has no version.
func TestDB_Version_Closed(t *testing.T) {
	db := MustOpenDB(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Version(context.Background()); err == nil {
		t.Fatal("Version after Close succeeded")
	}
}
