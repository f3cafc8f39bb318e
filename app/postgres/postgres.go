// Package postgres implements app.Store on a PostgreSQL database with
// github.com/jackc/pgx/v5 (a pgxpool). It behaves like app/sqlite (the two
// share the conformance suite in app/storetest) but the database is a server
// that backends on several machines can share.
//
// When the server cannot be reached every call fails within QueryTimeout
// with an app.EUNAVAILABLE error, which the HTTP layer answers with 503; the
// pool reconnects by itself once the server is back.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/posterctl/posterctl/app"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Defaults for the timeouts; a connect_timeout in the connection string
// wins over DefaultConnectTimeout.
const (
	// DefaultConnectTimeout bounds one connection attempt, so an unreachable
	// server (packets dropped rather than refused) fails fast.
	DefaultConnectTimeout = 2 * time.Second
	// DefaultQueryTimeout bounds each store call, including waiting for a
	// pooled connection. It stays well under the load balancer's 30 s
	// response timeout, so a client gets our 503 and not the LB's 504.
	DefaultQueryTimeout = 5 * time.Second
	// DefaultOpenTimeout bounds Open: connecting and applying migrations.
	DefaultOpenTimeout = 30 * time.Second
)

// maxTxAttempts is how often a write transaction is tried when PostgreSQL
// aborts it for a deadlock or a serialization failure, or when the pooled
// connection turned out to be dead before anything was sent.
const maxTxAttempts = 3

// DB is the PostgreSQL store.
type DB struct {
	// DSN is a postgres:// or postgresql:// URL (or any form pgx accepts).
	// It holds a password, so it is never logged: use Redact.
	DSN string

	// Now returns the current time; tests replace it.
	Now func() time.Time

	// QueryTimeout bounds each store call (DefaultQueryTimeout when zero).
	QueryTimeout time.Duration

	pool *pgxpool.Pool
}

// NewDB returns a store for the database at dsn; call Open before use.
func NewDB(dsn string) *DB {
	return &DB{DSN: dsn, Now: time.Now, QueryTimeout: DefaultQueryTimeout}
}

// Redact returns dsn with any password replaced by "xxxxx", for logs and
// error messages. Of a string that does not parse as a URL it keeps only
// the scheme and what follows the last '@' up to any query, since where a
// password sits is then uncertain.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		scheme, rest, ok := strings.Cut(dsn, "://")
		if !ok {
			return "xxxxx"
		}
		at := strings.LastIndexByte(rest, '@')
		if at < 0 {
			return scheme + "://xxxxx"
		}
		tail := rest[at+1:]
		if q := strings.IndexByte(tail, '?'); q >= 0 {
			tail = tail[:q] + "?xxxxx"
		}
		return scheme + "://xxxxx@" + tail
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if lk := strings.ToLower(k); lk == "password" || lk == "sslpassword" {
				q[k] = []string{"xxxxx"}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// ParseConfig checks dsn and returns the pool configuration Open uses, with
// the connect timeout defaulted. Its errors never contain the password.
func ParseConfig(dsn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("invalid connection string %s: %s", Redact(dsn), parseReason(err))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	return cfg, nil
}

// parseReason is the part of a pgx parse error that names the problem.
// pgx masks passwords in its errors only on a best-effort basis, and
// net/url's errors quote the whole input, so the connection string is cut
// out of both.
func parseReason(err error) string {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return "cannot parse it"
	}
	cp := *pe
	cp.ConnString = ""
	reason := strings.TrimPrefix(cp.Error(), "cannot parse ``: ")
	var ue *url.Error
	if errors.As(pe, &ue) {
		reason = strings.ReplaceAll(reason, ue.Error(), ue.Err.Error())
	}
	return reason
}

// Open connects and applies the embedded migrations that are not applied
// yet. It fails, rather than waiting, when the server is unreachable: a
// supervisor restarts the backend with backoff.
func (db *DB) Open(ctx context.Context) (err error) {
	if db.DSN == "" {
		return errors.New("open store: connection string is empty")
	}
	if db.Now == nil {
		db.Now = time.Now
	}
	if db.QueryTimeout <= 0 {
		db.QueryTimeout = DefaultQueryTimeout
	}
	cfg, err := ParseConfig(db.DSN)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultOpenTimeout)
	defer cancel()
	if db.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return fmt.Errorf("open store %s: %w", Redact(db.DSN), err)
	}
	defer func() {
		if err != nil {
			db.pool.Close()
		}
	}()
	if err := db.migrate(ctx); err != nil {
		return fmt.Errorf("open store %s: %w", Redact(db.DSN), err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (db *DB) Close() error {
	if db.pool != nil {
		db.pool.Close()
	}
	return nil
}

// Ping runs a query that needs the schema, not just a connection.
func (db *DB) Ping(ctx context.Context) error {
	ctx, cancel := db.callContext(ctx)
	defer cancel()
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		return storeErr("ping store", err)
	}
	return nil
}

// callContext bounds one store call.
func (db *DB) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, db.QueryTimeout)
}

// migrate applies the embedded migrations in name order, each once. Backends
// starting together on an empty database queue on a transaction-scoped
// advisory lock keyed by the schema, so each migration runs exactly once and
// tests in separate schemas do not wait for each other.
func (db *DB) migrate(ctx context.Context) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer db.rollback(ctx, tx)

	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('posterctl.migrate.' || coalesce(current_schema(), ''), 0))`); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name       text        PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		var done bool
		if err := tx.QueryRow(ctx, `SELECT exists(SELECT 1 FROM schema_migrations WHERE name = $1)`, name).Scan(&done); err != nil {
			return fmt.Errorf("migrate: %s: %w", name, err)
		} else if done {
			continue
		}
		buf, err := fs.ReadFile(migrationFS, name)
		if err != nil {
			return fmt.Errorf("migrate: %s: %w", name, err)
		}
		// Without arguments pgx uses the simple protocol, which runs a
		// file of several statements in one round trip.
		if _, err := tx.Exec(ctx, string(buf)); err != nil {
			return fmt.Errorf("migrate: %s: %w", name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (name) VALUES ($1)`, name); err != nil {
			return fmt.Errorf("migrate: %s: %w", name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// querier is what a single statement needs: the pool (autocommit) or a
// transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// inTx runs fn in a transaction and commits it when fn succeeds. fn gets
// the context bounded by QueryTimeout and must use it for every query.
func (db *DB) inTx(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return db.withRetry(ctx, func(ctx context.Context) error { return db.tryTx(ctx, fn) })
}

// autocommit runs fn, which makes a single statement, on the pool: a
// statement is its own transaction, and saving BEGIN and COMMIT saves two of
// its three round trips.
func (db *DB) autocommit(ctx context.Context, fn func(ctx context.Context, q querier) error) error {
	return db.withRetry(ctx, func(ctx context.Context) error { return fn(ctx, db.pool) })
}

// withRetry runs attempt under QueryTimeout. A deadlock, a serialization
// failure or a dead pooled connection that was sent nothing aborts the
// attempt with nothing committed, so it is tried again.
func (db *DB) withRetry(ctx context.Context, attempt func(ctx context.Context) error) error {
	ctx, cancel := db.callContext(ctx)
	defer cancel()
	var err error
	for range maxTxAttempts {
		if err = attempt(ctx); err == nil || !retryable(err) || ctx.Err() != nil {
			break
		}
	}
	return err
}

func (db *DB) tryTx(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return storeErr("begin", err)
	}
	defer db.rollback(ctx, tx)
	if err := fn(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return storeErr("commit", err)
	}
	return nil
}

// rollback ends tx unless it was committed. It must run even when ctx has
// expired, or the connection would go back to the pool inside a
// transaction, yet never wait longer than a query may.
func (db *DB) rollback(ctx context.Context, tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), db.QueryTimeout)
	defer cancel()
	_ = tx.Rollback(ctx) // after Commit, or on a dead connection: nothing to undo
}

// retryable reports an error after which running the transaction again is
// both safe and likely to succeed.
func retryable(err error) bool {
	var se *storeError
	if !errors.As(err, &se) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(se.cause, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return pgconn.SafeToRetry(se.cause)
}

// storeError is a driver error that the HTTP layer should answer with 503:
// it is an *app.Error for errors.As (so app.ErrorCode sees EUNAVAILABLE) and
// keeps the driver's error for the logs. Neither mentions the password: pgx
// prints only user, database and address.
type storeError struct {
	appErr *app.Error
	cause  error
}

func (e *storeError) Error() string   { return e.appErr.Message + ": " + e.cause.Error() }
func (e *storeError) Unwrap() []error { return []error{e.appErr, e.cause} }

// storeErr wraps a driver error from step. Errors that mean the server is
// unreachable, shutting down, overloaded or too slow become EUNAVAILABLE;
// anything else is an internal error.
func storeErr(step string, err error) error {
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "53100" {
		// disk_full: as with SQLite, writes answer 507 and reads go on.
		return &storeError{
			appErr: &app.Error{Code: app.ESTORAGE, Message: "the disk of the store is full; try again later"},
			cause:  fmt.Errorf("%s: %w", step, err),
		}
	}
	if why := unavailable(err); why != "" {
		return &storeError{
			appErr: &app.Error{Code: app.EUNAVAILABLE, Message: "store unavailable: " + why},
			cause:  fmt.Errorf("%s: %w", step, err),
		}
	}
	return fmt.Errorf("%s: %w", step, err)
}

// unavailable says in a few words, safe for clients, why err means the
// database cannot serve now, or returns "" when it does not mean that.
func unavailable(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03":
			return "the database server is shutting down or starting up"
		case strings.HasPrefix(pe.Code, "08"):
			return "lost the connection to the database server"
		case strings.HasPrefix(pe.Code, "53"):
			return "the database server is out of resources"
		case pe.Code == "40001" || pe.Code == "40P01":
			return "the store is busy; try again"
		case pe.Code == "57014":
			return "the database server did not answer in time"
		}
		return ""
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		return "cannot connect to the database server"
	case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
		return "the database server did not answer in time"
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, pgconn.ErrConnClosed):
		return "lost the connection to the database server"
	}
	return ""
}

// isUniqueViolation reports a UNIQUE or PRIMARY KEY violation.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// isForeignKeyViolation reports a row that points at a missing one.
func isForeignKeyViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}

// stamp is now as the store keeps it: UTC, to the millisecond, the same as
// app/sqlite, so both stores return equal times.
func stamp(now time.Time) time.Time { return time.UnixMilli(now.UnixMilli()).UTC() }
