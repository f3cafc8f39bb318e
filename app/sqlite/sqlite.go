// Package sqlite implements app.Store on a SQLite file with modernc.org/sqlite
// (pure Go, no cgo). Several backend processes open the same file at once;
// SQLite's file locks make them one store.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/posterctl/posterctl/app"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// busyTimeout is how long a connection waits for another process's write
// lock before giving up. Write transactions here take well under a
// millisecond, so reaching it means something is badly wrong.
const busyTimeout = 10 * time.Second

// DB is the SQLite store. It keeps three pools on the same file (see gen):
//
//   - writes: one connection, transactions begin IMMEDIATE. A deferred
//     transaction that reads and then writes cannot wait for the write lock
//     (SQLite answers SQLITE_BUSY at once to avoid a deadlock), IMMEDIATE
//     takes the lock up front, and beginWrite waits for it (writelock.go).
//     One connection per process means writers of this process queue in Go,
//     in the order they came (writeQueue), and only writers of other
//     processes meet in beginWrite.
//   - reads: several query-only connections; WAL lets them run while a
//     writer commits.
//   - side: one connection for the watch goroutine (health.go), which
//     checks that the file is still the one at Path, restores it when it was
//     deleted and keeps the WAL small.
type DB struct {
	// Path is the database file. Its parent directory is created by Open.
	Path string

	// Now returns the current time; tests replace it.
	Now func() time.Time

	read readPool
	g    atomic.Pointer[gen]
	w    watch
	ver  version

	tightened []string // what Open changed about file modes; see Tightened
}

// NewDB returns a store for the file at path; call Open before use.
func NewDB(path string) *DB {
	return &DB{Path: path, Now: time.Now}
}

// Open creates the parent directory and the file, private to the owner (see
// prepareFiles), opens both pools and applies the embedded migrations that
// are not applied yet.
func (db *DB) Open() (err error) {
	if db.Path == "" {
		return errors.New("open store: database path is empty")
	}
	if strings.ContainsRune(db.Path, '?') {
		return fmt.Errorf("open store: database path %q must not contain '?'", db.Path)
	}
	db.tightened = nil
	if err := db.prepareFiles(); err != nil {
		return plainFileError(db.Path, err)
	}
	g, err := db.openGen(context.Background())
	if err != nil {
		return plainOpenError(db.Path, err)
	}
	db.g.Store(g)
	db.read = readPool{db}
	db.startWatch()
	return nil
}

// cur is the gen in use.
func (db *DB) cur() *gen { return db.g.Load() }

// Close stops the watch goroutine and closes the pools. The pools stay set,
// so a call after Close gets "database is closed" rather than a nil pointer.
func (db *DB) Close() error {
	return db.stopWatch()
}

// Ping runs a query that touches the file, not just the connection.
func (db *DB) Ping(ctx context.Context) error {
	var n int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	return nil
}

// migrateWhenFree runs migrate, retrying while the file is busy: another
// backend holds the write lock for its own migrations, or, on a new file
// that backends of a new cluster open at the same moment, is turning it into
// WAL or creating its shared-memory index. The write connection has no busy
// handler (writelock.go), so the wait is polled, in steps of a millisecond
// and more: this runs once per opening.
func (db *DB) migrateWhenFree(ctx context.Context, w *sql.DB) error {
	return retryWhileBusy(ctx, time.Millisecond, 50*time.Millisecond, func() error { return migrate(ctx, w) })
}

// isBusy reports a lock held by another connection.
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// migrate applies the embedded migrations in name order, each once. It runs
// in one IMMEDIATE transaction, so backends starting together on a new file
// apply each migration exactly once.
func migrate(ctx context.Context, w *sql.DB) error {
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback()

	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE name = ?`, name).Scan(&n); err != nil {
			return fmt.Errorf("migrate: %s: %w", name, err)
		} else if n != 0 {
			continue
		}
		buf, err := fs.ReadFile(migrationFS, name)
		if err != nil {
			return fmt.Errorf("migrate: %s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, string(buf)); err != nil {
			return fmt.Errorf("migrate: %s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name) VALUES (?)`, name); err != nil {
			return fmt.Errorf("migrate: %s: %w", name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// inTx runs fn in a write transaction and commits it when fn succeeds.
// Writes are refused while the file is not the store's (see health.go), and
// each checks the file again once it holds the write lock; while a deleted
// file is restored, they wait for it (whileMoving). Posts take
// inRawTx (rawtx.go), the same on the driver's statements directly.
//
// ctx bounds the wait for the write lock; fn and the commit run under a
// context that cannot be cancelled. Both are short, since the write
// connection never waits for a lock once it holds one, and the driver
// watches every statement run under a cancellable context with a goroutine
// of its own. A write whose client left completes or fails on its own
// merits, as it would have a moment later.
func (db *DB) inTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx, g *gen) error) error {
	return db.whileMoving(ctx, func() error { return db.inTxOnce(ctx, fn) })
}

// inTxOnce is one try of inTx.
func (db *DB) inTxOnce(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx, g *gen) error) error {
	if err := db.writable(); err != nil {
		return err
	}
	g := db.cur()
	tx, c, err := beginWrite(ctx, g)
	if err != nil {
		return db.noteWrite(storeErr("begin", err))
	}
	defer c.Close()
	defer tx.Rollback()
	if err := db.stillAtPath(g); err != nil {
		return err
	}
	if err := fn(context.WithoutCancel(ctx), tx, g); err != nil {
		return db.noteWrite(err)
	}
	if err := tx.Commit(); err != nil {
		return db.noteWrite(storeErr("commit", err))
	}
	return db.noteWrite(nil)
}

// storeErr wraps a driver error; a lock still held after busy_timeout becomes
// EUNAVAILABLE so a client sees 503 (retry later) rather than 500, and a full
// disk ESTORAGE (507, reads still work).
func storeErr(step string, err error) error {
	if isBusy(err) {
		return &app.Error{Code: app.EUNAVAILABLE, Message: "the store is busy; try again"}
	}
	if isFull(err) {
		return &app.Error{Code: app.ESTORAGE, Message: "the disk of the store is full; try again later"}
	}
	if isCantOpen(err) {
		// A new connection while the file is deleted (health.go restores it).
		return &app.Error{Code: app.EUNAVAILABLE, Message: "the store file cannot be opened; try again"}
	}
	return fmt.Errorf("%s: %w", step, err)
}

// isForeignKey reports a row that points at a missing one.
func isForeignKey(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// isConstraint reports a UNIQUE or PRIMARY KEY violation.
func isConstraint(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code()
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func millis(t time.Time) int64      { return t.UnixMilli() }
func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
