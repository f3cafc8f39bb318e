//go:build unix

package proxy

import (
	"net"
	"strconv"
	"syscall"
	"testing"
)

// deadAddr is a loopback address that refuses connections. A socket bound
// to it, not listening, holds its port until the test ends: a port merely
// freed went, now and then, to the next server the test started (a backend,
// the balancer itself). One started on this address on purpose still gets
// it, as both set SO_REUSEADDR and only a listening socket excludes others.
func deadAddr(t testing.TB) string {
	t.Helper()
	// Not inherited by the processes the tests start, which would hold the
	// port past the test.
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}

// TestDeadAddr: the address refuses connections, servers started on any
// port are not given it, and one started on it on purpose is.
func TestDeadAddr(t *testing.T) {
	addr := deadAddr(t)
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("%s accepted a connection", addr)
	}
	for range 500 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := l.Addr().String()
		l.Close()
		if got == addr {
			t.Fatalf("a server on any port was given %s", addr)
		}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	l.Close()
}
