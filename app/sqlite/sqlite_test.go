package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app"
	"github.com/posterctl/posterctl/app/sqlite"
	"github.com/posterctl/posterctl/app/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// MustOpenDB opens a store on a fresh file in a temporary directory and
// closes it when the test ends.
func MustOpenDB(tb testing.TB) *sqlite.DB {
	tb.Helper()
	return MustOpenDBAt(tb, filepath.Join(tb.TempDir(), "poster.db"))
}

func MustOpenDBAt(tb testing.TB, path string) *sqlite.DB {
	tb.Helper()
	db := sqlite.NewDB(path)
	if err := db.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	})
	return db
}

// rawQuery reads the file with a separate connection, so checks do not go
// through the code under test.
func rawQuery[T any](tb testing.TB, path, query string) T {
	tb.Helper()
	conn, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	var v T
	if err := conn.QueryRow(query).Scan(&v); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return v
}

func TestDB_Open(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nested", "dir", "poster.db")
		db := MustOpenDBAt(t, path)
		if err := db.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		if mode := rawQuery[string](t, path, `PRAGMA journal_mode`); mode != "wal" {
			t.Fatalf("journal_mode = %q, want wal", mode)
		}
	})

	t.Run("Reopen", func(t *testing.T) {
		// A second open of the same file, as a second backend does, must not
		// apply the migrations again.
		path := filepath.Join(t.TempDir(), "poster.db")
		MustOpenDBAt(t, path)
		MustOpenDBAt(t, path)
		if n := rawQuery[int](t, path, `SELECT count(*) FROM schema_migrations`); n != 3 {
			t.Fatalf("schema_migrations has %d rows, want 3 (0001_init, 0002_store_id, 0003_idempotency_expiry)", n)
		}
	})

	t.Run("ErrParentIsFile", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		db := sqlite.NewDB(filepath.Join(file, "poster.db"))
		if err := db.Open(); err == nil {
			db.Close()
			t.Fatal("expected an error")
		}
	})

	t.Run("ErrNotADatabase", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "poster.db")
		if err := os.WriteFile(path, []byte("this is not a SQLite database, just some text......................................................."), 0o644); err != nil {
			t.Fatal(err)
		}
		db := sqlite.NewDB(path)
		err := db.Open()
		if err == nil {
			db.Close()
			t.Fatal("expected an error")
		}
		if want := path + " is not a SQLite database"; err.Error() != want {
			t.Fatalf("error = %q, want %q", err, want)
		}
	})

	t.Run("ErrEmptyPath", func(t *testing.T) {
		if err := sqlite.NewDB("").Open(); err == nil {
			t.Fatal("expected an error")
		}
	})
}

// TestStore runs the conformance suite shared with app/postgres.
func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) *storetest.Subject {
		path := filepath.Join(t.TempDir(), "poster.db")
		open := func(t *testing.T) app.Store {
			db := MustOpenDBAt(t, path)
			db.Now = now
			return db
		}
		return &storetest.Subject{
			Store:  open(t),
			Reopen: open,
			Count: func(t *testing.T, table string) int {
				return rawQuery[int](t, path, `SELECT count(*) FROM `+table)
			},
		}
	})
}
