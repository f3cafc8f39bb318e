package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"time"
)

// sideBusyTimeout bounds how long a checkpoint of the watch goroutine waits
// for other connections: it runs again a moment later, while a TRUNCATE
// holds back every backend's writers for as long as it waits for readers
// to leave the WAL, so under reads and posts at once a long timeout here
// stops every post for that long.
const sideBusyTimeout = 20 * time.Millisecond

// gen is one opening of the file at Path: the pools and what they were opened
// on. A deleted file that was restored is opened anew as another gen.
type gen struct {
	write  *sql.DB    // one connection, transactions begin IMMEDIATE
	writeQ writeQueue // the turns at write; take them with writeConn
	read   *sql.DB    // query-only connections
	side   *sql.DB    // one connection for the watch goroutine
	ver    verConn    // PRAGMA data_version for Version
	st     stmts
	raw    rawStmts // on the write connection

	file    fileID // device and inode of the file the pools have open
	storeID string
}

// close closes the pools that are open.
func (g *gen) close() error {
	errs := []error{g.st.close(), g.raw.close(g.write), g.ver.close()}
	for _, p := range []*sql.DB{g.read, g.side, g.write} {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	return errors.Join(errs...)
}

// pool kinds for dsn.
const (
	poolWrite = iota
	poolRead
	poolSide
)

// dsn builds the connection string of a pool.
//
// Durability choice: journal_mode=WAL with synchronous=NORMAL. A commit
// survives the process being killed (the supervisor's common failure) but the
// last commits can be lost on power loss or an OS crash; FULL would survive
// that too at roughly a seventh of the commit rate measured on this machine.
// For a message board we take NORMAL.
//
// Only the write pool may create the file, and only Open uses it on a path
// that may not exist. The others are "file:" URIs with mode=rw: a connection
// opened later, after the file was deleted, must fail rather than create an
// empty database at the path that every other backend would then take for
// another store.
func (db *DB) dsn(kind int) string {
	q := url.Values{}
	busy := busyTimeout
	switch kind {
	case poolSide:
		busy = sideBusyTimeout
	case poolWrite:
		busy = 0 // beginWrite waits for the write lock
	}
	q.Set("_busy_timeout", fmt.Sprint(busy.Milliseconds()))
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "NORMAL")
	q.Set("_foreign_keys", "1")
	switch kind {
	case poolWrite:
		q.Set("_txlock", "immediate")
		return db.Path + "?" + q.Encode()
	case poolRead:
		q.Set("_query_only", "1")
	}
	q.Set("mode", "rw")
	return "file:" + escapePath(db.Path) + "?" + q.Encode()
}

// escapePath makes path fit for a "file:" URI: '?', '#' and '%' in a name
// would otherwise be read as URI syntax.
func escapePath(path string) string { return (&url.URL{Path: path}).EscapedPath() }

// openGen opens the pools on the file now at Path and applies the
// migrations that are not applied yet.
func (db *DB) openGen(ctx context.Context) (_ *gen, err error) {
	g := &gen{writeQ: newWriteQueue()}
	defer func() {
		if err != nil {
			g.close()
		}
	}()
	if g.write, err = sql.Open("sqlite", db.dsn(poolWrite)); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	g.write.SetMaxOpenConns(1)
	g.write.SetMaxIdleConns(1)
	// The connection must stay open: the pool would otherwise reopen it and
	// rerun the pragmas now and then, and it holds the file we check.
	g.write.SetConnMaxIdleTime(0)
	g.write.SetConnMaxLifetime(0)
	if err := db.migrateWhenFree(ctx, g.write); err != nil {
		return nil, fmt.Errorf("open store %s: %w", db.Path, err)
	}
	// The write connection holds the file open now, so this is its identity
	// for as long as the gen lives.
	fi, err := os.Stat(db.Path)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if g.file, err = identity(fi); err != nil {
		return nil, fmt.Errorf("open store %s: %w", db.Path, err)
	}
	if err := g.write.QueryRowContext(ctx, `SELECT store_id FROM store_meta WHERE one = 1`).Scan(&g.storeID); err != nil {
		return nil, fmt.Errorf("open store %s: read store id: %w", db.Path, err)
	}

	if g.read, err = sql.Open("sqlite", db.dsn(poolRead)); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	n := 2 * runtime.GOMAXPROCS(0)
	g.read.SetMaxOpenConns(n)
	g.read.SetMaxIdleConns(n)
	if err := g.read.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("open store %s: %w", db.Path, err)
	}

	if g.side, err = sql.Open("sqlite", db.dsn(poolSide)); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	g.side.SetMaxOpenConns(1)
	g.side.SetMaxIdleConns(1)
	g.side.SetConnMaxIdleTime(0)
	g.side.SetConnMaxLifetime(0)
	if err := g.side.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("open store %s: %w", db.Path, err)
	}
	if err := g.ver.open(ctx, db.dsn(poolRead)); err != nil {
		return nil, fmt.Errorf("open store %s: %w", db.Path, err)
	}
	if err := g.st.prepare(ctx, g); err != nil {
		return nil, fmt.Errorf("open store %s: %w", db.Path, err)
	}
	if err := g.raw.prepare(ctx, g.write); err != nil {
		return nil, fmt.Errorf("open store %s: %w", db.Path, err)
	}
	return g, nil
}

// readPool runs queries on the read pool of the current gen, so that the
// handlers' code does not change when a restored file is reopened.
type readPool struct{ db *DB }

func (p readPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return p.db.cur().read.QueryRowContext(ctx, query, args...)
}
