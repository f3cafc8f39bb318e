package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"

	"github.com/posterctl/posterctl/app"
)

// verConn is the connection of a gen that answers PRAGMA data_version. The
// pragma's value is per connection (it changes when any other connection,
// of this process or another, commits), so it is always asked on this one
// connection, held for the gen's life: a pool could hand out a new
// connection whose count happens to equal the old one's. Every request of
// a cached page asks it, so the statement runs on the driver directly,
// without database/sql's rows and scanning.
type verConn struct {
	mu   sync.Mutex // one statement, so one caller at a time
	pool *sql.DB
	conn *sql.Conn
	stmt driver.Stmt // used only inside conn.Raw
	vals [1]driver.Value
}

func (v *verConn) open(ctx context.Context, dsn string) (err error) {
	if v.pool, err = sql.Open("sqlite", dsn); err != nil {
		return err
	}
	v.pool.SetMaxOpenConns(1)
	v.pool.SetMaxIdleConns(1)
	if v.conn, err = v.pool.Conn(ctx); err != nil {
		return err
	}
	return v.conn.Raw(func(dc any) error {
		pc, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("driver connection %T cannot prepare with a context", dc)
		}
		v.stmt, err = pc.PrepareContext(ctx, sqlDataVersion)
		return err
	})
}

func (v *verConn) dataVersion(ctx context.Context) (dv int64, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	err = v.conn.Raw(func(any) error {
		sq, ok := v.stmt.(driver.StmtQueryContext)
		if !ok {
			return fmt.Errorf("driver statement %T cannot query with a context", v.stmt)
		}
		rows, err := sq.QueryContext(ctx, nil)
		if err != nil {
			return err
		}
		defer rows.Close()
		if err := rows.Next(v.vals[:]); err != nil {
			return err
		}
		n, ok := v.vals[0].(int64)
		if !ok {
			return fmt.Errorf("data_version is %T, not an integer", v.vals[0])
		}
		dv = n
		return nil
	})
	return dv, err
}

func (v *verConn) close() error {
	var errs []error
	// A store may be closed twice; the second close finds the connection
	// gone, as sql.DB.Close does without complaint.
	if v.conn != nil {
		if v.stmt != nil {
			err := v.conn.Raw(func(any) error { return v.stmt.Close() })
			if !errors.Is(err, sql.ErrConnDone) {
				errs = append(errs, err)
			}
		}
		if err := v.conn.Close(); !errors.Is(err, sql.ErrConnDone) {
			errs = append(errs, err)
		}
	}
	if v.pool != nil {
		errs = append(errs, v.pool.Close())
	}
	return errors.Join(errs...)
}

// version turns the data versions of successive gens into one number.
type version struct {
	mu sync.Mutex
	g  *gen
	dv int64
	n  uint64
}

// Version implements app.Versioned: the number changes once anything was
// committed to the file since the last call, by any process, or the store
// moved to a restored file. A call that returns the number an earlier call
// returned proves that nothing was committed between the two: the pragma
// starts a read transaction, so it sees every commit made before it, and
// its count only grows.
func (db *DB) Version(ctx context.Context) (uint64, error) {
	g := db.cur()
	dv, err := g.ver.dataVersion(ctx)
	if err != nil {
		return 0, storeErr("data version", err)
	}
	db.ver.mu.Lock()
	defer db.ver.mu.Unlock()
	if g != db.ver.g || dv != db.ver.dv {
		db.ver.n++
		db.ver.g, db.ver.dv = g, dv
	}
	return db.ver.n, nil
}

var _ app.Versioned = (*DB)(nil)
