//go:build !linux

package sockio

import "net"

// Conn is plain net.Conn I/O where the raw calls are not implemented.
type Conn struct {
	conn  net.Conn
	flush func() error
}

// Init prepares c for conn; false, as there is no raw path here.
func (c *Conn) Init(conn net.Conn) bool {
	c.conn = conn
	return false
}

func (c *Conn) Read(p []byte) (int, error)  { return c.conn.Read(p) }
func (c *Conn) Write(p []byte) (int, error) { return c.conn.Write(p) }

// Peek cannot look at a socket here: PeekUnknown, so callers treat an idle
// connection as possibly closed and dial a new one.
func (c *Conn) Peek() Peeked { return PeekUnknown }

// SetFlush names what FlushThenWait writes with.
func (c *Conn) SetFlush(flush func() error) { c.flush = flush }

// FlushThenWait only flushes; the read that follows waits as usual.
func (c *Conn) FlushThenWait() (flushErr, waitErr error) { return c.flush(), nil }

func peekAny(net.Conn) Peeked { return PeekUnknown }
