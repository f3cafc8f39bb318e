package sockio

import (
	"net"
	"time"
)

// Listener gives the server client connections that use Conn's raw path,
// where the platform and the socket allow it.
type Listener struct{ net.Listener }

// Accept wraps each accepted connection (see Wrap).
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	return Wrap(c), nil
}

// Wrap returns c as a ClientConn when its reads and writes can take the raw
// path, else c itself.
func Wrap(c net.Conn) net.Conn {
	cc := &ClientConn{Conn: c}
	if !cc.io.Init(c) {
		return c
	}
	return cc
}

// ClientConn is a client's connection with raw I/O and lazy read deadlines;
// the rest is the socket's.
//
// Unlike a backend connection (see Conn.FlushThenWait), the read that
// follows a response here is not folded into the response's write: a client
// may send its next request before it has the response (pipelining), and
// readiness that came before the write would be missed, stalling it until
// the idle timeout.
type ClientConn struct {
	net.Conn
	io Conn

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

func (c *ClientConn) Read(p []byte) (int, error) {
	if err := c.applyReadDeadline(); err != nil {
		return 0, err
	}
	return c.io.Read(p)
}

func (c *ClientConn) Write(p []byte) (int, error) { return c.io.Write(p) }

// SetReadDeadline records t; it takes effect at the next Read.
func (c *ClientConn) SetReadDeadline(t time.Time) error {
	c.wantRead = t
	return nil
}

// SetDeadline sets the write deadline now and the read deadline lazily.
func (c *ClientConn) SetDeadline(t time.Time) error {
	c.wantRead = t
	return c.Conn.SetWriteDeadline(t)
}

func (c *ClientConn) applyReadDeadline() error {
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
