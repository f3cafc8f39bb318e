package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Preflight opens the store at path once, as `up` does before it starts
// anything, and checks it with PRAGMA quick_check. An error is one line in
// plain words naming the file and the cause, for errors that a restart
// cannot fix: a missing or read-only data dir, a file that is not a SQLite
// database, a file that fails its integrity check. A path with no file yet
// is fine: the file is created, with its schema and store id.
func Preflight(path string) error {
	if err := checkDir(filepath.Dir(path)); err != nil {
		return err
	}
	if _, err := os.Stat(path); err == nil {
		if err := quickCheck(path); err != nil {
			return err
		}
	}
	db := NewDB(path)
	if err := db.Open(); err != nil {
		return err
	}
	return db.Close()
}

// checkDir makes the data dir as Open does (0700) and proves it writable: SQLite
// needs to create the -wal and -shm files next to the database.
func checkDir(dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return dirError(dir, err)
	}
	f, err := os.CreateTemp(dir, ".posterctl-preflight-*")
	if err != nil {
		return dirError(dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func dirError(dir string, err error) error {
	switch {
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("data dir %s is read-only", dir)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("data dir %s is not writable by this user", dir)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("data dir %s does not exist", dir)
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("data dir %s is not a directory", dir)
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("data dir %s is on a full disk", dir)
	}
	return fmt.Errorf("data dir %s cannot be used: %v", dir, err)
}

// quickCheck runs PRAGMA quick_check on an existing file without creating
// or converting anything.
func quickCheck(path string) error {
	p, err := sql.Open("sqlite", "file:"+escapePath(path)+"?mode=rw&_busy_timeout=5000")
	if err != nil {
		return fmt.Errorf("%s cannot be opened: %v", path, err)
	}
	defer p.Close()
	rows, err := p.QueryContext(context.Background(), `PRAGMA quick_check`)
	if err != nil {
		return plainOpenError(path, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return plainOpenError(path, err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return plainOpenError(path, err)
	}
	if len(problems) > 0 {
		more := ""
		if len(problems) > 1 {
			more = fmt.Sprintf(" (and %d more problems)", len(problems)-1)
		}
		return fmt.Errorf("%s failed its integrity check: %s%s", path, problems[0], more)
	}
	return nil
}

// plainOpenError says in plain words why the store at path cannot be
// opened, when the cause is one a restart will not fix; otherwise it
// returns err as it is. The driver's own words ("unable to open database
// file (14)") never say read-only.
func plainOpenError(path string, err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_NOTADB:
		return fmt.Errorf("%s is not a SQLite database", path)
	case sqlite3.SQLITE_CORRUPT:
		return fmt.Errorf("%s failed its integrity check: %s", path, firstLine(se.Error()))
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_IOERR:
		if derr := checkDir(filepath.Dir(path)); derr != nil {
			return derr
		}
		if f, ferr := os.OpenFile(path, os.O_RDWR, 0); ferr != nil {
			if errors.Is(ferr, syscall.EROFS) || errors.Is(ferr, fs.ErrPermission) {
				return fmt.Errorf("%s is read-only", path)
			}
		} else {
			// Closing a descriptor drops this process's locks on the file;
			// the store failed to open, so it holds none.
			f.Close()
		}
	}
	return err
}

// plainFileError is plainOpenError for what prepareFiles meets before the
// driver is involved: a read-only data dir, a file that cannot be opened
// for writing. Other errors stay as they are.
func plainFileError(path string, err error) error {
	if !errors.Is(err, syscall.EROFS) && !errors.Is(err, fs.ErrPermission) {
		return err
	}
	if derr := checkDir(filepath.Dir(path)); derr != nil {
		return derr
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path {
		return fmt.Errorf("%s is read-only", path)
	}
	return err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
