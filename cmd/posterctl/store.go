package main

// The driver switch: which app.Store a --db value opens. It lives here, where
// the program is wired, so that app/ holds the domain and its two
// implementations and nothing that picks between them; `backend` and `up`
// share it and so agree on what a --db value means and on how to show it
// without its password.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/posterctl/posterctl/app"
	"github.com/posterctl/posterctl/app/postgres"
	"github.com/posterctl/posterctl/app/sqlite"
)

// isPostgres reports whether db is a PostgreSQL connection URL; anything
// else without a scheme is the path of a SQLite file.
func isPostgres(db string) bool {
	scheme, _, ok := strings.Cut(db, "://")
	if !ok {
		return false
	}
	scheme = strings.ToLower(scheme)
	return scheme == "postgres" || scheme == "postgresql"
}

// checkDB reports a --db value that cannot work, without connecting or
// touching the file system. Its errors never contain a password.
func checkDB(db string) error {
	switch {
	case db == "":
		return errors.New("the database is empty: give a SQLite file path or a postgres:// URL")
	case isPostgres(db):
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

// redactDB returns db fit for logs and status: a PostgreSQL URL with its
// password masked, or the SQLite path as it is.
func redactDB(db string) string {
	if isPostgres(db) || strings.Contains(db, "://") {
		return postgres.Redact(db)
	}
	return db
}

// openStore checks db and opens the store it names, applying migrations.
// ctx bounds the opening only (connecting and migrating PostgreSQL).
func openStore(ctx context.Context, db string) (app.Store, error) {
	if err := checkDB(db); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if isPostgres(db) {
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
