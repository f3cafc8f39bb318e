//go:build linux

package sockio

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
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

// isTimeout tells a deadline's error from others.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestRawIO(t *testing.T) {
	client, server := tcpPair(t)
	var r Conn
	if !r.Init(server) {
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

// TestRawIOWriteError: a write to a socket the peer reset fails with an
// error that names the write, not with a short count.
func TestRawIOWriteError(t *testing.T) {
	client, server := tcpPair(t)
	var r Conn
	if !r.Init(server) {
		t.Fatal("a non-blocking TCP socket was not taken")
	}
	client.(*net.TCPConn).SetLinger(0)
	client.Close() // RST
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for err == nil && time.Now().Before(deadline) {
		_, err = r.Write(make([]byte, 64<<10))
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("write to a reset socket: %v, want a write OpError", err)
	}
}

func TestRawIOLeavesBlockingSockets(t *testing.T) {
	client, server := tcpPair(t)
	rc, err := server.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { syscall.SetNonblock(int(fd), false) })
	var r Conn
	if r.Init(server) {
		t.Fatal("a blocking socket was taken for raw calls")
	}
	if _, ok := Wrap(server).(*ClientConn); ok {
		t.Fatal("the listener wrapped a blocking socket")
	}
	// Reads and writes still work, through the socket's own methods.
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Read(make([]byte, 1)); n != 1 || err != nil {
		t.Fatalf("read: %d, %v", n, err)
	}
	// And the peek, which never blocks whatever the socket's mode.
	if got := r.Peek(); got != PeekEmpty {
		t.Fatalf("peek at a blocking idle socket: %v, want empty", got)
	}
}

// TestPeek: the one peek tells an idle socket, waiting bytes (left in
// place) and the peer's close apart, for a Conn, a ClientConn and a plain
// connection alike.
func TestPeek(t *testing.T) {
	kinds := map[string]func(net.Conn) func() Peeked{
		"Conn": func(c net.Conn) func() Peeked {
			var r Conn
			if !r.Init(c) {
				t.Fatal("not taken")
			}
			return r.Peek
		},
		"ClientConn": func(c net.Conn) func() Peeked {
			w := Wrap(c)
			if _, ok := w.(*ClientConn); !ok {
				t.Fatal("not wrapped")
			}
			return func() Peeked { return PeekConn(w) }
		},
		"Plain": func(c net.Conn) func() Peeked { return func() Peeked { return PeekConn(c) } },
	}
	for name, mk := range kinds {
		t.Run(name, func(t *testing.T) {
			client, server := tcpPair(t)
			peek := mk(server)
			if got := peek(); got != PeekEmpty {
				t.Fatalf("idle: %v, want empty", got)
			}
			client.Write([]byte("ab"))
			waitPeek(t, peek, PeekData)
			if got := peek(); got != PeekData {
				t.Fatalf("peek consumed the bytes: %v", got)
			}
			buf := make([]byte, 2)
			if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "ab" {
				t.Fatalf("read after peeks: %q, %v", buf, err)
			}
			client.Close()
			waitPeek(t, peek, PeekClosed)
			server.Close()
			if got := peek(); got != PeekUnknown {
				t.Fatalf("closed here: %v, want unknown", got)
			}
		})
	}
	if got := PeekConn(pipeConn(t)); got != PeekUnknown {
		t.Fatalf("peek at a pipe: %v, want unknown", got)
	}
}

// TestNotASocket: a connection without a descriptor keeps its own I/O; the
// peek cannot tell, and the send is a plain flush.
func TestNotASocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	var r Conn
	if r.Init(a) {
		t.Fatal("a pipe was taken for raw calls")
	}
	if w := Wrap(a); w != a {
		t.Fatal("a pipe was wrapped")
	}
	if got := r.Peek(); got != PeekUnknown {
		t.Fatalf("peek: %v, want unknown", got)
	}
	bw := bufio.NewWriter(&r)
	r.SetFlush(bw.Flush)
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 2)
		n, _ := io.ReadFull(b, buf)
		got <- string(buf[:n])
	}()
	bw.WriteString("hi")
	if ferr, werr := r.FlushThenWait(); ferr != nil || werr != nil {
		t.Fatalf("flush %v, wait %v", ferr, werr)
	}
	if s := <-got; s != "hi" {
		t.Fatalf("peer got %q", s)
	}
	b.Close()
	if _, err := r.Write([]byte("x")); err == nil {
		t.Fatal("write to a closed pipe succeeded")
	}
}

func pipeConn(t *testing.T) net.Conn {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a
}

// waitPeek polls until peek sees want: bytes sent on loopback arrive at
// once, but not within the call that sent them.
func waitPeek(t *testing.T, peek func() Peeked, want Peeked) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := peek()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("peek: %v, want %v", got, want)
		}
		runtime.Gosched()
	}
}

// TestFlushThenWait: the write goes out, the call returns once the answer
// begins to arrive, and a deadline or a failed write is reported as such.
func TestFlushThenWait(t *testing.T) {
	client, server := tcpPair(t)
	var r Conn
	if !r.Init(client) {
		t.Fatal("not taken")
	}
	bw := bufio.NewWriter(&r)
	r.SetFlush(bw.Flush)
	echo := make(chan error, 1)
	go func() {
		buf := make([]byte, 4)
		_, err := io.ReadFull(server, buf)
		if err == nil {
			_, err = server.Write(buf)
		}
		echo <- err
	}()
	bw.WriteString("ping")
	if ferr, werr := r.FlushThenWait(); ferr != nil || werr != nil {
		t.Fatalf("flush %v, wait %v", ferr, werr)
	}
	if err := <-echo; err != nil {
		t.Fatal(err)
	}
	if got := r.Peek(); got != PeekData {
		t.Fatalf("after the wait: %v, want the answer there", got)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(&r, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("answer %q, %v", buf, err)
	}

	// No answer: the read deadline ends the wait.
	client.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	bw.WriteString("pong")
	if ferr, werr := r.FlushThenWait(); ferr != nil || !isTimeout(werr) {
		t.Fatalf("flush %v, wait %v: want a timeout from the wait", ferr, werr)
	}
	client.SetReadDeadline(time.Time{})

	// A failed write is the flush's error, and there is no wait.
	r.SetFlush(func() error { return errors.New("boom") })
	if ferr, werr := r.FlushThenWait(); ferr == nil || ferr.Error() != "boom" || werr != nil {
		t.Fatalf("flush %v, wait %v: want the flush's error", ferr, werr)
	}
}

// TestClientConnReadDeadline checks the lazy read deadline: it is in force
// for the next Read, it may fall a little early but never late, and an
// earlier one replaces a later one at once.
func TestClientConnReadDeadline(t *testing.T) {
	client, server := tcpPair(t)
	c, ok := Wrap(server).(*ClientConn)
	if !ok {
		t.Fatal("a TCP connection was not wrapped")
	}
	read := func() error {
		done := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 16))
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			client.Close() // unblocks the read
			<-done
			t.Fatal("Read outlived its deadline")
			return nil
		}
	}
	far := time.Now().Add(time.Hour)
	c.SetReadDeadline(far)
	client.Write([]byte("a"))
	if err := read(); err != nil {
		t.Fatalf("read under a far deadline: %v", err)
	}
	if !c.hasRead.Equal(far) {
		t.Fatalf("deadline in force %v, want %v", c.hasRead, far)
	}

	// A little later than the one in force: kept as it is.
	c.SetReadDeadline(far.Add(deadlineSlack / 2))
	client.Write([]byte("b"))
	if err := read(); err != nil {
		t.Fatal(err)
	}
	if !c.hasRead.Equal(far) {
		t.Fatalf("a deadline within the slack was applied: %v", c.hasRead)
	}

	// Much later: applied.
	later := far.Add(2 * deadlineSlack)
	c.SetReadDeadline(later)
	client.Write([]byte("c"))
	if err := read(); err != nil {
		t.Fatal(err)
	}
	if !c.hasRead.Equal(later) {
		t.Fatalf("deadline in force %v, want %v", c.hasRead, later)
	}

	// Earlier, however slightly: applied, and it cuts the read.
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if err := read(); !isTimeout(err) {
		t.Fatalf("read past an earlier deadline: %v, want a timeout", err)
	}

	// No deadline at all.
	c.SetDeadline(time.Time{})
	client.Write([]byte("d"))
	if err := read(); err != nil {
		t.Fatalf("read with no deadline: %v", err)
	}
	if !c.hasRead.IsZero() {
		t.Fatalf("deadline in force %v, want none", c.hasRead)
	}
}
