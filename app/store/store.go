// Package store opens the app.Store that a --db value names: a
// postgres:// or postgresql:// URL selects PostgreSQL (app/postgres), and
// anything else is the path of a SQLite file (app/sqlite). It is the one
// place that knows both, so `posterctl backend` and `posterctl up` agree on
// what a --db value means and on how to show it without its password.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/posterctl/posterctl/app"
	"github.com/posterctl/posterctl/app/postgres"
	"github.com/posterctl/posterctl/app/sqlite"
)

// IsPostgres reports whether db is a PostgreSQL connection URL.
func IsPostgres(db string) bool {
	scheme, _, ok := strings.Cut(db, "://")
	if !ok {
		return false
	}
	scheme = strings.ToLower(scheme)
	return scheme == "postgres" || scheme == "postgresql"
}

// Check reports a --db value that cannot work, without connecting or
// touching the file system. Its errors never contain a password.
func Check(db string) error {
	switch {
	case db == "":
		return errors.New("the database is empty: give a SQLite file path or a postgres:// URL")
	case IsPostgres(db):
		_, err := postgres.ParseConfig(db)
		return err
	case strings.Contains(db, "://"):
		scheme, _, _ := strings.Cut(db, "://")
		return fmt.Errorf("unsupported database URL scheme %q: use postgres://user:password@host:5432/db or a SQLite file path", scheme)
	case strings.ContainsRune(db, '?'):
		return fmt.Errorf("SQLite path %q must not contain '?'", db)
	}
	return nil
}

// Redact returns db fit for logs and status: a PostgreSQL URL with its
// password masked, or the SQLite path as it is.
func Redact(db string) string {
	if IsPostgres(db) || strings.Contains(db, "://") {
		return postgres.Redact(db)
	}
	return db
}

// Open checks db and opens the store it names, applying migrations. ctx
// bounds the opening only (connecting and migrating PostgreSQL).
func Open(ctx context.Context, db string) (app.Store, error) {
	if err := Check(db); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if IsPostgres(db) {
		s := postgres.NewDB(db)
		if err := s.Open(ctx); err != nil {
			return nil, err
		}
		return s, nil
	}
	s := sqlite.NewDB(db)
	if err := s.Open(); err != nil {
		return nil, err
	}
	return s, nil
}
