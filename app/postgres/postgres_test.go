package postgres_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app"
	"github.com/posterctl/posterctl/app/postgres"
	"github.com/posterctl/posterctl/app/postgres/pgtest"
	"github.com/posterctl/posterctl/app/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// `go test` without -v hides skip messages; this line is always seen.
	if why := pgtest.SkipReason(); why != "" && !pgtest.InCI() {
		fmt.Fprintln(os.Stderr, "app/postgres: PostgreSQL tests skipped:", why)
	}
	goleak.VerifyTestMain(m)
}

// MustOpenDB opens a store on dsn and closes it when the test ends.
func MustOpenDB(tb testing.TB, dsn string) *postgres.DB {
	tb.Helper()
	db := postgres.NewDB(dsn)
	if err := db.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	})
	return db
}

// TestStore runs the conformance suite shared with app/sqlite, each test in
// a schema of its own on the server named by POSTERCTL_TEST_POSTGRES.
func TestStore(t *testing.T) {
	base := pgtest.DSN(t)
	storetest.Run(t, func(t *testing.T, now func() time.Time) *storetest.Subject {
		dsn := pgtest.Schema(t, base)
		open := func(t *testing.T) app.Store {
			db := MustOpenDB(t, dsn)
			db.Now = now
			return db
		}
		return &storetest.Subject{
			Store:  open(t),
			Reopen: open,
			Count:  func(t *testing.T, table string) int { return pgtest.Count(t, dsn, table) },
		}
	})
}

// TestDB_Open_Concurrent opens one empty schema from many goroutines at once,
// as backends started together do: the advisory lock lets each migration
// run exactly once and nobody fails.
func TestDB_Open_Concurrent(t *testing.T) {
	dsn := pgtest.Schema(t, pgtest.DSN(t))
	const n = 6
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			db := postgres.NewDB(dsn)
			if err := db.Open(context.Background()); err != nil {
				errs <- err
				return
			}
			errs <- db.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	files, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	if got := pgtest.Count(t, dsn, "schema_migrations"); got != len(files) {
		t.Fatalf("schema_migrations has %d rows, want one per migration, %d", got, len(files))
	}
}

func TestDB_Open_Errors(t *testing.T) {
	const secret = "s3cr3t-PW"
	ctx := context.Background()

	t.Run("ErrEmpty", func(t *testing.T) {
		if err := postgres.NewDB("").Open(ctx); err == nil {
			t.Fatal("expected an error")
		}
	})

	t.Run("ErrMalformed", func(t *testing.T) {
		for _, dsn := range []string{
			"postgres://user:" + secret + "@127.0.0.1:notaport/db",
			"postgres://user:" + secret + "@127.0.0.1:5432/db?sslmode=bogus",
			"postgres://user:" + secret + "@127.0.0.1:5432/db?pool_max_conns=many",
			"postgres://user:" + secret + "@[::1/db",
			"postgres://user@127.0.0.1/db?password=" + secret + "&connect_timeout=x",
			"postgresql://user:" + secret + "@%zz/db",
		} {
			err := postgres.NewDB(dsn).Open(ctx)
			if err == nil {
				t.Errorf("%s: expected an error", postgres.Redact(dsn))
				continue
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the password: %v", err)
			}
			if !strings.Contains(err.Error(), "invalid connection string") {
				t.Errorf("error does not say what is wrong: %v", err)
			}
		}
	})

	t.Run("ErrUnreachable", func(t *testing.T) {
		// Port 1 on loopback refuses at once: Open fails fast, clearly, and
		// without the password.
		dsn := "postgres://user:" + secret + "@127.0.0.1:1/db?sslmode=disable"
		start := time.Now()
		err := postgres.NewDB(dsn).Open(ctx)
		if err == nil {
			t.Fatal("expected an error")
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error shows the password: %v", err)
		}
		if !strings.Contains(err.Error(), "postgres://user:xxxxx@127.0.0.1:1/db") {
			t.Fatalf("error does not name the (redacted) database: %v", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("Open took %v", d)
		}
	})

	t.Run("ErrWrongPassword", func(t *testing.T) {
		dsn := pgtest.WithParam(t, pgtest.DSN(t), "password", secret)
		err := postgres.NewDB(dsn).Open(ctx)
		if err == nil {
			t.Fatal("expected an error")
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error shows the password: %v", err)
		}
	})

	t.Run("ErrNoSchema", func(t *testing.T) {
		dsn := pgtest.WithParam(t, pgtest.DSN(t), "search_path", "no_such_schema_here")
		if err := postgres.NewDB(dsn).Open(ctx); err == nil {
			t.Fatal("expected an error")
		}
	})
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h:5432/db":                     "postgres://u:xxxxx@h:5432/db",
		"postgresql://u:pw@h/db?sslmode=disable":        "postgresql://u:xxxxx@h/db?sslmode=disable",
		"postgres://u@h/db?password=pw&sslmode=disable": "postgres://u@h/db?password=xxxxx&sslmode=disable",
		"postgres://u@h/db?PassWord=pw":                 "postgres://u@h/db?PassWord=xxxxx",
		"postgres://h/db":                               "postgres://h/db",
		"postgres://u:pw@[::1/db":                       "postgres://xxxxx@[::1/db",
		"postgres://u:p@w@h:x/db?password=pw":           "postgres://xxxxx@h:x/db?xxxxx",
		"postgres://h:x/db?password=pw":                 "postgres://xxxxx",
		"host=h password=pw":                            "xxxxx",
	} {
		if got := postgres.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDB_Unavailable shows what a backend sees while PostgreSQL is down:
// every call fails within the query timeout with EUNAVAILABLE and a message
// that says why without the password, and the same store works again once
// the server is back, without being reopened.
func TestDB_Unavailable(t *testing.T) {
	srv := pgtest.StartServer(t)
	db := MustOpenDB(t, srv.DSN)
	db.QueryTimeout = 3 * time.Second
	ctx := context.Background()
	u := &app.User{Username: "olivia"}
	if err := db.CreateUser(ctx, u, []byte("h")); err != nil {
		t.Fatal(err)
	}

	srv.Stop(t)
	calls := map[string]func() error{
		"Ping":            func() error { return db.Ping(ctx) },
		"CreateUser":      func() error { return db.CreateUser(ctx, &app.User{Username: "peter"}, []byte("h")) },
		"FindCredentials": func() error { _, _, err := db.FindCredentials(ctx, "olivia"); return err },
		"CreateSession": func() error {
			return db.CreateSession(ctx, &app.Session{TokenHash: []byte("t"), UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour)})
		},
		"FindSession":   func() error { _, err := db.FindSession(ctx, []byte("t"), time.Now()); return err },
		"DeleteSession": func() error { return db.DeleteSession(ctx, []byte("t")) },
		"CreatePost": func() error {
			_, _, err := db.CreatePost(ctx, &app.Post{AuthorID: u.ID, Content: "x"}, "k")
			return err
		},
		"FindPosts": func() error { _, err := db.FindPosts(ctx, app.PostFilter{Limit: 5}); return err },
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if d := time.Since(start); d > db.QueryTimeout+time.Second {
			t.Errorf("%s took %v while the server was down", name, d)
		}
		if app.ErrorCode(err) != app.EUNAVAILABLE {
			t.Errorf("%s: err = %v, want unavailable", name, err)
			continue
		}
		msg := app.ErrorMessage(err)
		if !strings.HasPrefix(msg, "store unavailable: ") || strings.Contains(msg, "127.0.0.1") {
			t.Errorf("%s: client message %q", name, msg)
		}
		if strings.Contains(err.Error(), srv.Password) {
			t.Errorf("%s: error shows the password: %v", name, err)
		}
	}

	srv.Start(t)
	start := time.Now()
	for name, call := range calls {
		// The first call on a connection that died with the server may
		// still fail; the pool drops it and the next call reconnects.
		var err error
		for range 3 {
			if err = call(); err == nil || app.ErrorCode(err) != app.EUNAVAILABLE {
				break
			}
		}
		if err != nil && app.ErrorCode(err) != app.ENOTFOUND {
			t.Errorf("%s after restart: %v", name, err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("recovery took %v", d)
	}
}
