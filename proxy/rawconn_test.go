package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case server = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted")
	}
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestRawIO(t *testing.T) {
	client, server := tcpPair(t)
	var r rawIO
	if !r.init(server) {
		t.Fatal("a non-blocking TCP socket was not taken")
	}

	// Bytes both ways, a write larger than the socket buffer included
	// (it must wait for room rather than fail).
	big := make([]byte, 8<<20)
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(client, make([]byte, len(big)))
		done <- err
	}()
	if n, err := r.Write(big); err != nil || n != len(big) {
		t.Fatalf("write: %d, %v", n, err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("peer did not get the bytes")
	}
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := io.ReadAtLeast(&r, buf, 4); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}

	// The read deadline applies to the wait.
	server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := r.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	server.SetReadDeadline(time.Time{})

	// The peer's close is an EOF.
	client.Close()
	if _, err := r.Read(buf); err != io.EOF {
		t.Fatalf("read after the peer closed: %v, want EOF", err)
	}
}

func TestRawIOLeavesBlockingSockets(t *testing.T) {
	_, server := tcpPair(t)
	rc, err := server.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { syscall.SetNonblock(int(fd), false) })
	var r rawIO
	if r.init(server) {
		t.Fatal("a blocking socket was taken for raw calls")
	}
	if _, ok := (rawListener{}).wrap(server).(*clientConn); ok {
		t.Fatal("the listener wrapped a blocking socket")
	}
}
