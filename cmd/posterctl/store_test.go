package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posterctl/posterctl/app/postgres"
	"github.com/posterctl/posterctl/app/postgres/pgtest"
	"github.com/posterctl/posterctl/app/sqlite"
)

func TestIsPostgres(t *testing.T) {
	for db, want := range map[string]bool{
		"postgres://u:p@h/db":   true,
		"postgresql://h/db":     true,
		"POSTGRES://h/db":       true,
		"./data/poster.db":      false,
		"/var/lib/postgres/x":   false,
		"postgres":              false,
		"postgres:/h/db":        false,
		"mysql://u:p@h/db":      false,
		"data/postgres://x.db?": false,
	} {
		if got := isPostgres(db); got != want {
			t.Errorf("isPostgres(%q) = %v, want %v", db, got, want)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, db := range []string{"./data/poster.db", "/tmp/x.db", "postgres://u:p@127.0.0.1:5432/db?sslmode=disable"} {
		if err := checkDB(db); err != nil {
			t.Errorf("checkDB(%q): %v", db, err)
		}
	}
	for db, want := range map[string]string{
		"":                                      "empty",
		"mysql://u:secret@h/db":                 `unsupported database URL scheme "mysql"`,
		"x.db?mode=ro":                          "must not contain '?'",
		"postgres://u:secret@h:xx/db":           "invalid connection string postgres://xxxxx@h:xx/db: invalid port",
		"postgres://u:secret@h/db?sslmode=nope": "invalid connection string",
	} {
		err := checkDB(db)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkDB(%q) = %v, want %q", db, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("checkDB(%q) shows the password: %v", db, err)
		}
	}
}

func TestRedact(t *testing.T) {
	for db, want := range map[string]string{
		"./data/poster.db":               "./data/poster.db",
		"postgres://u:secret@h:5432/db":  "postgres://u:xxxxx@h:5432/db",
		"postgresql://u:secret@h/db?a=b": "postgresql://u:xxxxx@h/db?a=b",
		"mysql://u:secret@h/db":          "mysql://u:xxxxx@h/db",
	} {
		if got := redactDB(db); got != want {
			t.Errorf("redactDB(%q) = %q, want %q", db, got, want)
		}
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()

	t.Run("SQLite", func(t *testing.T) {
		s, err := openStore(ctx, filepath.Join(t.TempDir(), "poster.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, ok := s.(*sqlite.DB); !ok {
			t.Fatalf("store is %T, want *sqlite.DB", s)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Postgres", func(t *testing.T) {
		s, err := openStore(ctx, pgtest.Schema(t, pgtest.DSN(t)))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, ok := s.(*postgres.DB); !ok {
			t.Fatalf("store is %T, want *postgres.DB", s)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		for _, db := range []string{"", "mysql://h/db", "postgres://u:secret@h:xx/db"} {
			if s, err := openStore(ctx, db); err == nil {
				s.Close()
				t.Errorf("openStore(%q) succeeded", db)
			} else if strings.Contains(err.Error(), "secret") {
				t.Errorf("openStore(%q) shows the password: %v", db, err)
			}
		}
	})
}
