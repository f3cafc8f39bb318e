package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/posterctl/posterctl/app"
)

// TestStoreErr covers the error classes that the outage tests meet only by
// chance of timing (a query in flight when the server shuts down).
func TestStoreErr(t *testing.T) {
	for _, tc := range []struct {
		err       error
		code      string
		retryable bool
	}{
		{&pgconn.PgError{Code: "57P01"}, app.EUNAVAILABLE, false}, // admin shutdown
		{&pgconn.PgError{Code: "57P03"}, app.EUNAVAILABLE, false}, // starting up
		{&pgconn.PgError{Code: "08006"}, app.EUNAVAILABLE, false}, // connection failure
		{&pgconn.PgError{Code: "53300"}, app.EUNAVAILABLE, false}, // too many connections
		{&pgconn.PgError{Code: "53100"}, app.ESTORAGE, false},     // disk full
		{&pgconn.PgError{Code: "40P01"}, app.EUNAVAILABLE, true},  // deadlock
		{&pgconn.PgError{Code: "40001"}, app.EUNAVAILABLE, true},  // serialization
		{&pgconn.PgError{Code: "57014"}, app.EUNAVAILABLE, false}, // statement timeout
		{fmt.Errorf("query: %w", context.DeadlineExceeded), app.EUNAVAILABLE, false},
		{io.ErrUnexpectedEOF, app.EUNAVAILABLE, false},
		{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, app.EUNAVAILABLE, false},
		{pgconn.ErrConnClosed, app.EUNAVAILABLE, false},
		{&pgconn.PgError{Code: "23505"}, app.EINTERNAL, false}, // a bug, not an outage
		{&pgconn.PgError{Code: "42P01"}, app.EINTERNAL, false},
		{errors.New("cannot scan"), app.EINTERNAL, false},
		{context.Canceled, app.EINTERNAL, false}, // the client went away
	} {
		err := storeErr("step", tc.err)
		if got := app.ErrorCode(err); got != tc.code {
			t.Errorf("%v: code %s, want %s", tc.err, got, tc.code)
		}
		if got := retryable(err); got != tc.retryable {
			t.Errorf("%v: retryable %v, want %v", tc.err, got, tc.retryable)
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%v: lost in %v", tc.err, err)
		}
	}
}
