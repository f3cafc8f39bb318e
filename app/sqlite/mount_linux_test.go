//go:build linux

package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app"
	"github.com/posterctl/posterctl/app/sqlite"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory, or skips
// the test where mounting is not allowed.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root): %v", err)
	}
	t.Cleanup(func() { unmount(t, dir) })
	return dir
}

// bindReadOnly mounts dir read-only on a fresh directory (root ignores file
// modes, a read-only mount it cannot), or skips where that is not allowed.
func bindReadOnly(t *testing.T, dir string) string {
	t.Helper()
	ro := t.TempDir()
	if err := syscall.Mount(dir, ro, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind-mount here (needs root): %v", err)
	}
	t.Cleanup(func() { unmount(t, ro) })
	if err := syscall.Mount("", ro, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Skipf("cannot remount read-only here: %v", err)
	}
	return ro
}

func unmount(t *testing.T, dir string) {
	// A store the test left open would keep the mount busy; they are
	// closed by cleanups registered later, which run first.
	if err := syscall.Unmount(dir, 0); err != nil {
		t.Errorf("unmount %s: %v", dir, err)
	}
}

func TestPreflight(t *testing.T) {
	// openToo: the backend's own Open fails the same way. It does not run
	// quick_check (it reads the whole file, and every backend start would
	// pay for it), so a file that is damaged deep inside opens.
	check := func(t *testing.T, path, want string, openToo bool) {
		t.Helper()
		start := time.Now()
		err := sqlite.Preflight(path)
		if d := time.Since(start); d > time.Second {
			t.Errorf("Preflight took %v", d)
		}
		if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("Preflight = %v, want one line starting %q", err, want)
		}
		if !openToo {
			return
		}
		db := sqlite.NewDB(path)
		if err := db.Open(); err == nil || !strings.HasPrefix(err.Error(), want) {
			db.Close()
			t.Fatalf("Open = %v, want it to start %q", err, want)
		}
	}

	t.Run("OK", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "data", "poster.db")
		if err := sqlite.Preflight(path); err != nil {
			t.Fatal(err)
		}
		if id := rawQuery[string](t, path, `SELECT store_id FROM store_meta`); id == "" {
			t.Fatal("no store id after Preflight")
		}
		if err := sqlite.Preflight(path); err != nil {
			t.Fatalf("Preflight of an existing store: %v", err)
		}
	})
	t.Run("RandomBytes", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "poster.db")
		buf := make([]byte, 64<<10)
		if _, err := io.ReadFull(randReader{}, buf); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		check(t, path, path+" is not a SQLite database", true)
	})
	t.Run("Corrupt", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "poster.db")
		db := MustOpenDBAt(t, path)
		alice := newPoster(t, db, "alice")
		for i := range 200 {
			if err := alice.post(i); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Page 4 and on hold table data; the header and schema stay.
		if _, err := f.WriteAt([]byte(strings.Repeat("\xff", 8192)), 3*4096); err != nil {
			t.Fatal(err)
		}
		f.Close()
		check(t, path, path+" failed its integrity check: ", false)
	})
	t.Run("ReadOnlyDir", func(t *testing.T) {
		dir := t.TempDir()
		MustOpenDBAt(t, filepath.Join(dir, "poster.db")).Close()
		ro := bindReadOnly(t, dir)
		check(t, filepath.Join(ro, "poster.db"), "data dir "+ro+" is read-only", true)
	})
	t.Run("ReadOnlyEmptyDir", func(t *testing.T) {
		ro := bindReadOnly(t, t.TempDir())
		check(t, filepath.Join(ro, "poster.db"), "data dir "+ro+" is read-only", true)
	})
	t.Run("DirIsAFile", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "data")
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := sqlite.Preflight(filepath.Join(file, "poster.db")); err == nil || err.Error() != "data dir "+file+" is not a directory" {
			t.Fatalf("Preflight = %v", err)
		}
	})
}

// randReader reads from the kernel's random source.
type randReader struct{}

func (randReader) Read(p []byte) (int, error) {
	f, err := os.Open("/dev/urandom")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Read(p)
}

// TestDB_DiskFull: on a full disk writes fail with ESTORAGE, health is
// degraded with the reason, reads work; once space is freed writes work
// again with no reopen, health is ok and the WAL is back under 1 MiB.
func TestDB_DiskFull(t *testing.T) {
	ctx := context.Background()
	dir := mountTmpfs(t, 8<<20)
	path := filepath.Join(dir, "poster.db")
	db := MustOpenDBAt(t, path)
	alice := newPoster(t, db, "alice")

	// Fill the disk, then leave a little room so that posts fill the rest.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	var size int64
	for {
		n, err := f.Write(chunk)
		size += int64(n)
		if errors.Is(err, syscall.ENOSPC) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size - 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()

	long := strings.Repeat("x", app.MaxPostLen)
	var full error
	for i := 0; full == nil; i++ {
		if i > 100000 {
			t.Fatal("the disk never filled")
		}
		_, _, err := db.CreatePost(ctx, &app.Post{AuthorID: alice.user, Content: long}, "")
		if app.ErrorCode(err) == app.ESTORAGE {
			full = err
		} else if err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
	}
	degraded, err := db.StoreHealth(ctx)
	if err != nil || !strings.Contains(degraded, "is full") {
		t.Fatalf("StoreHealth on a full disk = %q, %v; want degraded", degraded, err)
	}
	if _, err := db.FindPosts(ctx, app.PostFilter{Limit: 10}); err != nil {
		t.Fatalf("read on a full disk: %v", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		_, _, err := db.CreatePost(ctx, &app.Post{AuthorID: alice.user, Content: "space is back"}, "")
		return err
	})
	eventually(t, 10*time.Second, func() error {
		if degraded, err := db.StoreHealth(ctx); err != nil || degraded != "" {
			return fmt.Errorf("health %q, %v", degraded, err)
		}
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			return err
		}
		if fi.Size() > 1<<20 {
			return fmt.Errorf("WAL is %d bytes", fi.Size())
		}
		return nil
	})
}
