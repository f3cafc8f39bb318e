//go:build !unix

package proxy

import (
	"net"
	"testing"
)

// deadAddr is a loopback address nothing listens on: a port just freed,
// which another server may be given later (see the unix version).
func deadAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
