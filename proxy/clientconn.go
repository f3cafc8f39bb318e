package proxy

import (
	"net"
	"syscall"
	"time"
)

// rawListener gives the server client connections that use rawIO.
type rawListener struct{ net.Listener }

func (l rawListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	return l.wrap(c), nil
}

func (rawListener) wrap(c net.Conn) net.Conn {
	cc := &clientConn{Conn: c}
	if !cc.io.init(c) {
		return c
	}
	return cc
}

// clientConn is a client's connection with rawIO and lazy read deadlines;
// the rest is the socket's.
//
// Unlike a backend connection (see upConn.send), the read that follows a
// response here is not folded into the response's write: a client may send
// its next request before it has the response (pipelining), and readiness
// that came before the write would be missed, stalling it until the idle
// timeout (TestPipelinedWhileAtBackend).
type clientConn struct {
	net.Conn
	io rawIO

	// The read deadline last asked for, and the one the poller has. The
	// server moves the read deadline twice a request (the idle wait, then
	// the header read), and each move is a timer update under the poller's
	// locks, though a request usually arrives whole in the one read that
	// follows the idle wait. So a deadline takes effect at the next Read,
	// and one the poller already has within deadlineSlack before it (never
	// after) is left as it is. Only the goroutine that reads may set the
	// read deadline: fasthttp's connection loop and the tunnel it hands a
	// hijacked connection to both do.
	wantRead, hasRead time.Time
}

// deadlineSlack is how much earlier than asked a read deadline may fall.
const deadlineSlack = time.Second

func (c *clientConn) Read(p []byte) (int, error) {
	if err := c.applyReadDeadline(); err != nil {
		return 0, err
	}
	return c.io.Read(p)
}

func (c *clientConn) Write(p []byte) (int, error) { return c.io.Write(p) }

func (c *clientConn) SetReadDeadline(t time.Time) error {
	c.wantRead = t
	return nil
}

func (c *clientConn) SetDeadline(t time.Time) error {
	c.wantRead = t
	return c.Conn.SetWriteDeadline(t)
}

func (c *clientConn) applyReadDeadline() error {
	want, has := c.wantRead, c.hasRead
	if want.Equal(has) || !want.IsZero() && !has.IsZero() && !has.After(want) && want.Sub(has) < deadlineSlack {
		return nil
	}
	if err := c.Conn.SetReadDeadline(want); err != nil {
		return err
	}
	c.hasRead = want
	return nil
}

// SyscallConn keeps the socket reachable (clientGone peeks at it).
func (c *clientConn) SyscallConn() (syscall.RawConn, error) { return c.io.rc, nil }
