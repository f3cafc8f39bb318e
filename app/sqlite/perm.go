package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The store holds password hashes, so its files are for the owner alone.
const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
)

// storeFiles are the database and the files SQLite keeps next to it: the
// WAL and its index, and the rollback journal it uses before WAL is on.
func storeFiles(path string) []string {
	return []string{path, path + "-wal", path + "-shm", path + "-journal"}
}

// prepareFiles makes the database's directory (0700) and an empty database
// file (0600) when they do not exist, so that SQLite, which gives -wal and
// -shm the database file's mode, never creates anything readable by others.
// Existing files that others may read are tightened, and so is the directory
// when it holds nothing but the store; what changed is kept for Tightened.
func (db *DB) prepareFiles() error {
	dir := filepath.Dir(db.Path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return fmt.Errorf("open store: create directory: %w", err)
		}
	case err != nil:
		return fmt.Errorf("open store: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("open store: %s is not a directory", dir)
	default:
		if err := db.tightenDir(dir, fi.Mode()); err != nil {
			return err
		}
	}

	f, err := os.OpenFile(db.Path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	f.Close()
	for _, p := range storeFiles(db.Path) {
		if err := db.tightenFile(p); err != nil {
			return err
		}
	}
	return nil
}

// tightenFile takes group and other permissions off path, if it exists.
func (db *DB) tightenFile(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("open store: %s is not a regular file", path)
	}
	return db.tighten(path, fi.Mode())
}

// tightenDir takes group and other permissions off the store's directory,
// but only when it holds nothing else: a database put straight into a shared
// directory (/tmp, a home directory) must not take that directory away from
// its other users. Such a directory is noted instead.
func (db *DB) tightenDir(dir string, mode fs.FileMode) error {
	if mode.Perm()&0o077 == 0 {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	own := map[string]bool{}
	for _, p := range storeFiles(filepath.Base(db.Path)) {
		own[p] = true
	}
	for _, e := range entries {
		if !own[e.Name()] {
			db.tightened = append(db.tightened, fmt.Sprintf(
				"store directory %s is mode %04o and holds other files, so it was left as it is; the store's own files are 0600", dir, mode.Perm()))
			return nil
		}
	}
	return db.tighten(dir, mode)
}

func (db *DB) tighten(path string, mode fs.FileMode) error {
	perm := mode.Perm()
	if perm&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, perm&^0o077); err != nil {
		return fmt.Errorf("open store: take others' access away from %s: %w", path, err)
	}
	db.tightened = append(db.tightened, fmt.Sprintf("tightened %s from mode %04o to %04o", path, perm, perm&^0o077))
	return nil
}

// Tightened describes what Open changed about the store's file modes, or
// found and left, one message per line to log; it is empty when everything
// was already private.
func (db *DB) Tightened() []string { return db.tightened }
