package sqlite_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posterctl/posterctl/app"
	"github.com/posterctl/posterctl/app/sqlite"
)

func wantMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %04o, want %04o", path, got, want)
	}
}

// writeSomething makes SQLite create the -wal and -shm files.
func writeSomething(t *testing.T, db *sqlite.DB) {
	t.Helper()
	if err := db.CreateUser(context.Background(), &app.User{Username: "perm_user"}, []byte("hash")); err != nil {
		t.Fatal(err)
	}
}

// Files and a directory left readable by an older version are tightened when
// opened, and Open says so.
func TestDB_Open_Tightens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "poster.db")
	first := sqlite.NewDB(path)
	if err := first.Open(); err != nil {
		t.Fatal(err)
	}
	writeSomething(t, first)
	for p, mode := range map[string]fs.FileMode{dir: 0o755, path: 0o644, path + "-wal": 0o644, path + "-shm": 0o644} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}

	db := MustOpenDBAt(t, path)
	first.Close()
	wantMode(t, dir, 0o700)
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		wantMode(t, p, 0o600)
	}
	got := strings.Join(db.Tightened(), "\n")
	for _, p := range []string{dir, path, path + "-wal", path + "-shm"} {
		if !strings.Contains(got, "tightened "+p+" from mode 0") {
			t.Errorf("Tightened() does not mention %s:\n%s", p, got)
		}
	}
	// The store still works after the change.
	if _, _, err := db.FindCredentials(context.Background(), "perm_user"); err != nil {
		t.Fatal(err)
	}
}

// A directory that holds other files is not the store's own: its mode is
// reported, not changed, while the store's files are still made private.
func TestDB_Open_SharedDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "poster.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	db := MustOpenDBAt(t, path)
	wantMode(t, dir, 0o755)
	wantMode(t, path, 0o600)
	got := strings.Join(db.Tightened(), "\n")
	if !strings.Contains(got, "holds other files") || !strings.Contains(got, "tightened "+path) {
		t.Fatalf("Tightened() = %q", got)
	}
}

func TestDB_Open_ErrNotRegular(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "poster.db")
	if err := os.Symlink(filepath.Join(dir, "elsewhere"), path+"-wal"); err != nil {
		t.Fatal(err)
	}
	db := sqlite.NewDB(path)
	err := db.Open()
	if err == nil {
		db.Close()
		t.Fatal("Open with a symlinked -wal succeeded")
	}
	if !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("err = %v", err)
	}
}
