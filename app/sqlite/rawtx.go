package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The post path's write transaction runs on the write pool's driver
// connection directly, inside sql.Conn.Raw, with statements prepared once on
// that connection. Through database/sql every transaction and every result
// set inside one start a goroutine that watches a context, and the driver
// parses BEGIN and COMMIT anew for each transaction; on a path whose SQL
// work is one small insert, that was a large share of its cost.

// rawID names a statement of rawSQL.
type rawID int

const (
	rawBegin rawID = iota
	rawCommit
	rawRollback
	rawSessionUser
	rawInsertPost
	rawUsername
	rawExpireKeys
	rawFindKey
	rawSaveKey
	nRaw
)

var rawSQL = [nRaw]string{
	rawBegin:       `BEGIN IMMEDIATE`,
	rawCommit:      `COMMIT`,
	rawRollback:    `ROLLBACK`,
	rawSessionUser: sqlSessionUser,
	rawInsertPost:  sqlInsertPost,
	rawUsername:    sqlUsername,
	rawExpireKeys:  sqlExpireKeys,
	rawFindKey:     sqlFindKey,
	rawSaveKey:     sqlSaveKey,
}

// rawStmt is what the driver's statements offer.
type rawStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// rawStmts are a gen's statements on its write connection. Only the holder
// of that connection (the write pool has one) touches them.
type rawStmts struct {
	dc       any // the driver connection they are prepared on
	s        [nRaw]rawStmt
	prepared atomic.Bool // s holds statements; read by close without the connection
}

// on makes sure the statements are prepared on dc. The pool has a new
// connection only after it dropped the old one: inRawTx finalizes the
// statements before it has a connection dropped, and one the pool dropped
// on its own is closed already, so its statements are forgotten here.
func (r *rawStmts) on(ctx context.Context, dc any) error {
	if r.prepared.Load() && r.dc == dc {
		return nil
	}
	r.s, r.dc = [nRaw]rawStmt{}, nil
	r.prepared.Store(false)
	pc, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return fmt.Errorf("driver connection %T cannot prepare with a context", dc)
	}
	for i, q := range rawSQL {
		ds, err := pc.PrepareContext(ctx, q)
		if err != nil {
			r.finalize()
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		s, ok := ds.(rawStmt)
		if !ok {
			ds.Close()
			r.finalize()
			return fmt.Errorf("driver statement %T cannot run with a context", ds)
		}
		r.s[i] = s
	}
	r.dc = dc
	r.prepared.Store(true)
	return nil
}

// finalize closes the statements. The caller holds the connection.
func (r *rawStmts) finalize() error {
	var errs []error
	for i, s := range r.s {
		if s != nil {
			errs = append(errs, s.Close())
			r.s[i] = nil
		}
	}
	r.dc = nil
	r.prepared.Store(false)
	return errors.Join(errs...)
}

// prepare prepares the statements on the write pool's connection, so that
// a statement that does not compile fails Open rather than a request.
func (r *rawStmts) prepare(ctx context.Context, w *sql.DB) error {
	c, err := w.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Raw(func(dc any) error { return r.on(ctx, dc) })
}

// close finalizes the statements before the pool closes: the driver would
// otherwise keep the connection, and its file, open as a zombie. It waits
// for a write in progress to give the connection back. A pool whose
// statements were never prepared is not asked for a connection, which for
// the write pool could create a file at the path.
func (r *rawStmts) close(w *sql.DB) error {
	if w == nil || !r.prepared.Load() {
		return nil
	}
	c, err := w.Conn(context.Background())
	if err != nil {
		return nil // closed already, and the statements with it
	}
	defer c.Close()
	return c.Raw(func(dc any) error {
		if r.dc != dc {
			return nil
		}
		return r.finalize()
	})
}

// wtx is a write transaction on the raw statements.
type wtx struct {
	ctx  context.Context // cannot be cancelled, see inTx
	st   *rawStmts
	nv   [4]driver.NamedValue
	vals [5]driver.Value
}

func (t *wtx) args(vs []any) []driver.NamedValue {
	nv := t.nv[:0]
	for i, v := range vs {
		nv = append(nv, driver.NamedValue{Ordinal: i + 1, Value: v})
	}
	return nv
}

// exec runs a statement that returns no rows.
func (t *wtx) exec(id rawID, vs ...any) (driver.Result, error) {
	return t.st.s[id].ExecContext(t.ctx, t.args(vs))
}

// queryRow runs a statement and returns its first row's n columns, or
// sql.ErrNoRows. The values are valid until the next queryRow.
func (t *wtx) queryRow(id rawID, n int, vs ...any) (_ []driver.Value, err error) {
	rows, err := t.st.s[id].QueryContext(t.ctx, t.args(vs))
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := rows.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	dest := t.vals[:n]
	if err := rows.Next(dest); errors.Is(err, io.EOF) {
		return nil, sql.ErrNoRows
	} else if err != nil {
		return nil, err
	}
	return dest, nil
}

// inRawTx is inTx on the raw statements: fn runs in an IMMEDIATE
// transaction, committed when fn succeeds and rolled back otherwise.
func (db *DB) inRawTx(ctx context.Context, fn func(t *wtx) error) error {
	return db.whileMoving(ctx, func() error { return db.inRawTxOnce(ctx, fn) })
}

// inRawTxOnce is one try of inRawTx.
func (db *DB) inRawTxOnce(ctx context.Context, fn func(t *wtx) error) error {
	if err := db.writable(); err != nil {
		return err
	}
	g := db.cur()
	c, err := g.writeConn(ctx)
	if err != nil {
		return db.noteWrite(storeErr("begin", err))
	}
	defer c.Close()
	var txErr error
	err = c.Raw(func(dc any) error {
		t := &wtx{ctx: context.WithoutCancel(ctx), st: &g.raw}
		if err := t.st.on(t.ctx, dc); err != nil {
			txErr = storeErr("prepare", err)
			return nil
		}
		txErr = db.runRawTx(ctx, g, t, fn)
		if txErr == errConnLost {
			return driver.ErrBadConn // database/sql drops the connection
		}
		return nil
	})
	if err != nil && txErr == nil {
		txErr = err
	}
	return txErr
}

// errConnLost is a transaction that could be neither committed nor rolled
// back: its connection is in a state nobody knows, so it is dropped.
var errConnLost = errors.New("the write connection was left in an unknown state and is replaced")

// runRawTx begins (waiting for the write lock under ctx), runs fn and
// commits, rolling back on any failure or panic.
func (db *DB) runRawTx(ctx context.Context, g *gen, t *wtx, fn func(t *wtx) error) (err error) {
	err = retryWhileBusy(ctx, firstWriteLockWait, maxWriteLockWait, func() error {
		_, err := t.exec(rawBegin)
		return err
	})
	if err != nil {
		return db.noteWrite(storeErr("begin", err))
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		v := recover()
		rerr := t.rollback()
		if v != nil || rerr != nil {
			// database/sql drops the connection (Raw sees the panic, or
			// errConnLost); finalize its statements first, or the driver
			// keeps it, and the file, open as a zombie.
			t.st.finalize()
		}
		if v != nil {
			panic(v)
		}
		if rerr != nil {
			err = errConnLost
		}
	}()
	if err := db.stillAtPath(g); err != nil {
		return err
	}
	if err := fn(t); err != nil {
		return db.noteWrite(err)
	}
	if _, err := t.exec(rawCommit); err != nil {
		return db.noteWrite(storeErr("commit", err))
	}
	committed = true
	return db.noteWrite(nil)
}

// rollback ends the transaction; one that SQLite ended already (as it does
// after some failed COMMITs) is not an error.
func (t *wtx) rollback() error {
	_, err := t.exec(rawRollback)
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_ERROR && strings.Contains(se.Error(), "no transaction is active") {
		return nil
	}
	return err
}

// scanRow copies a row's INTEGER and TEXT columns into dest, each an *int64
// or a *string.
func scanRow(row []driver.Value, dest ...any) error {
	if len(row) != len(dest) {
		return fmt.Errorf("scan: %d columns into %d values", len(row), len(dest))
	}
	for i, d := range dest {
		var err error
		switch d := d.(type) {
		case *int64:
			*d, err = asInt64(row[i])
		case *string:
			*d, err = asString(row[i])
		default:
			err = fmt.Errorf("scan: cannot scan into %T", d)
		}
		if err != nil {
			return fmt.Errorf("column %d: %w", i, err)
		}
	}
	return nil
}

func asInt64(v driver.Value) (int64, error) {
	if n, ok := v.(int64); ok {
		return n, nil
	}
	return 0, fmt.Errorf("%T is not an integer", v)
}

func asString(v driver.Value) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	}
	return "", fmt.Errorf("%T is not text", v)
}
