// Package pgtest gives tests a PostgreSQL database: a schema of their own on
// the server named by POSTERCTL_TEST_POSTGRES, or a private server started
// from the installed binaries, which a test may stop and start at will.
//
// Outside CI a missing or unreachable server skips the test with a message
// saying how to run it; with CI=true it fails, so CI cannot pass without
// having run the PostgreSQL tests.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Env names the connection string of the shared test server, e.g.
// postgres://posterctl:posterctl@127.0.0.1:5432/posterctl_test?sslmode=disable
const Env = "POSTERCTL_TEST_POSTGRES"

// connectTimeout bounds the reachability check, so an absent server costs a
// test run two seconds, not a hang.
const connectTimeout = 2 * time.Second

// InCI reports whether the tests run in CI, where nothing may be skipped
// for want of PostgreSQL.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips tb with reason, or fails it when InCI.
func Unavailable(tb testing.TB, reason string) {
	tb.Helper()
	if InCI() {
		tb.Fatalf("PostgreSQL test cannot run in CI: %s", reason)
	}
	tb.Skipf("skipping PostgreSQL test: %s", reason)
}

// SkipReason says why the shared server cannot be used, or "" when it can.
// TestMain uses it to print one visible line, since `go test` without -v
// does not show skip messages.
func SkipReason() string {
	dsn := os.Getenv(Env)
	if dsn == "" {
		return Env + " is not set (e.g. postgres://posterctl:posterctl@127.0.0.1:5432/posterctl_test?sslmode=disable)"
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	conn, err := connect(ctx, dsn)
	if err != nil {
		return fmt.Sprintf("%s is set but the server is unreachable: %v", Env, err)
	}
	conn.Close(ctx)
	return ""
}

// DSN returns the shared server's connection string, or skips tb (fails it
// in CI) when it is not set or not reachable.
func DSN(tb testing.TB) string {
	tb.Helper()
	if why := SkipReason(); why != "" {
		Unavailable(tb, why)
	}
	return os.Getenv(Env)
}

// Schema creates an empty schema with a random name in the database at dsn
// and returns a connection string whose search_path is that schema, so a
// store opened on it sees only its own tables. The schema is dropped when
// the test ends.
func Schema(tb testing.TB, dsn string) string {
	tb.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	execSQL(tb, dsn, `CREATE SCHEMA `+name)
	tb.Cleanup(func() { execSQL(tb, dsn, `DROP SCHEMA `+name+` CASCADE`) })
	return WithParam(tb, dsn, "search_path", name)
}

// WithParam returns dsn with a query parameter set.
func WithParam(tb testing.TB, dsn, key, value string) string {
	tb.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatalf("%s is not a URL", Env)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// Count returns the number of rows in table, read through a connection of
// its own so that a check does not go through the code under test.
func Count(tb testing.TB, dsn, table string) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := connect(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		tb.Fatalf("count %s: %v", table, err)
	}
	return n
}

func execSQL(tb testing.TB, dsn, sql string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := connect(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot parse it", Env)
	}
	cfg.ConnectTimeout = connectTimeout
	return pgx.ConnectConfig(ctx, cfg)
}
