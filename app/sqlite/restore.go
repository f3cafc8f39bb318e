package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// restore puts the deleted file back at Path from g's open connections and
// reports whether a file is at Path now (ours or a peer's).
//
// It holds the old file's write lock (BEGIN IMMEDIATE on the write
// connection) from before the copy until after the rename. So only one
// backend copies: the others wait for the lock and then find the path taken.
// And nothing acknowledged is lost: a write of any backend committed before
// the lock is in the copy, and one that takes the lock after it sees the new
// file at the path and is refused (stillAtPath).
//
// VACUUM INTO runs on the side connection because it cannot run inside a
// transaction; in WAL mode it reads a snapshot while the lock is held.
func (db *DB) restore(ctx context.Context, g *gen) bool {
	db.setState(stateRestoring, fmt.Sprintf("the store file %s was deleted; restoring it from the open connection; writes wait for it", db.Path))
	tx, c, err := beginWrite(ctx, g)
	if err != nil {
		db.failRestore(err)
		return false
	}
	defer c.Close()
	defer tx.Rollback()
	if _, err := os.Stat(db.Path); err == nil {
		return true // a peer restored it while we waited for the lock
	} else if !errors.Is(err, fs.ErrNotExist) {
		db.failRestore(err)
		return false
	}
	if err := db.copyInto(ctx, g.side); err != nil {
		db.failRestore(err)
		return false
	}
	return true
}

func (db *DB) failRestore(err error) {
	db.setState(stateBroken, fmt.Sprintf("the store file %s was deleted and restoring it failed (retrying): %v", db.Path, err))
}

// copyInto writes a copy of the open database next to Path and renames it
// into place, durably.
func (db *DB) copyInto(ctx context.Context, side *sql.DB) error {
	dir, base := filepath.Split(db.Path)
	if dir == "" {
		dir = "."
	}
	var b [8]byte
	rand.Read(b[:])
	tmp := filepath.Join(dir, "."+base+".restore-"+hex.EncodeToString(b[:]))
	if _, err := side.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("copy: %w", storeErr("vacuum into", err))
	}
	// VACUUM INTO creates its file with SQLite's default mode, readable by
	// others; the store's files are the owner's alone (perm.go), and SQLite
	// gives the -wal and -shm the main file's mode.
	if err := os.Chmod(tmp, fileMode); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := syncPath(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	// A -wal or -shm left at the path belongs to the deleted file (backends
	// that have it open keep using their descriptors). A connection to the
	// new file would replay that WAL into it and corrupt it.
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(db.Path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			os.Remove(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, db.Path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncPath(dir)
}

// syncPath flushes a file or directory to disk. Nothing else in this
// process holds a lock on these, so closing the descriptor is safe.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// probeStoreID reads the store id of the file at path with a connection of
// its own that reads the main file alone (immutable=1). A normal connection
// would replay the -wal at the path, and after another file was moved over
// ours that WAL is still ours: the probe would read our own store id and
// take the stranger for our restored file. A restored file needs no WAL:
// VACUUM INTO writes everything into the main file. A read that races a
// checkpoint may fail; the next check, a moment later, reads again.
func probeStoreID(ctx context.Context, path string) (string, error) {
	p, err := sql.Open("sqlite", "file:"+escapePath(path)+"?mode=ro&immutable=1")
	if err != nil {
		return "", err
	}
	defer p.Close()
	var id string
	err = p.QueryRowContext(ctx, `SELECT store_id FROM store_meta WHERE one = 1`).Scan(&id)
	return id, err
}
