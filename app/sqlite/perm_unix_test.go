//go:build unix

package sqlite_test

import (
	"path/filepath"
	"syscall"
	"testing"
)

// The store holds password hashes: it is created readable by its owner
// only, whatever the umask lets through.
func TestDB_Open_Modes(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })

	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "poster.db")
	db := MustOpenDBAt(t, path)
	writeSomething(t, db)
	wantMode(t, dir, 0o700)
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		wantMode(t, p, 0o600)
	}
	if got := db.Tightened(); len(got) != 0 {
		t.Errorf("a new store reports tightening: %q", got)
	}
}
