package proxy

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// clientWriteBuffer is the server's write buffer: a response that fits is
// written by one Write of less than this, and only the last Write of a
// larger one can be shorter.
const clientWriteBuffer = 8 << 10

// rawListener gives the server client connections that use rawIO, and
// registers them with conns so that Close can reach those waiting.
type rawListener struct {
	net.Listener
	conns *clientConns
}

func (l rawListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	return l.wrap(c), nil
}

func (l rawListener) wrap(c net.Conn) net.Conn {
	cc := &clientConn{Conn: c, conns: l.conns}
	if !cc.io.init(c) {
		return c
	}
	cc.awaitFn = cc.writeThenRead
	if l.conns != nil {
		l.conns.add(cc)
	}
	return cc
}

// clientConns is the set of open client connections. The request path
// never takes its lock; accept and close do.
type clientConns struct {
	// closing is set once the server stops: no connection starts waiting
	// for a next request inside a write after that.
	closing atomic.Bool
	// idle is how long a connection waits for its next request.
	idle time.Duration

	mu  sync.Mutex
	set map[*clientConn]struct{}
}

func newClientConns(idle time.Duration) *clientConns {
	return &clientConns{idle: idle, set: make(map[*clientConn]struct{})}
}

func (s *clientConns) add(c *clientConn) {
	s.mu.Lock()
	s.set[c] = struct{}{}
	s.mu.Unlock()
}

func (s *clientConns) remove(c *clientConn) {
	s.mu.Lock()
	delete(s.set, c)
	s.mu.Unlock()
}

// stop keeps connections from starting a wait and ends the waits under way,
// so that each such connection goes on to its next step, which at shutdown
// is being closed.
func (s *clientConns) stop() {
	s.closing.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for c := range s.set {
		if c.waiting.Load() {
			_ = c.Conn.SetReadDeadline(now)
		}
	}
}

// clientConn is a client's connection with rawIO, lazy read deadlines, and
// a last write that also waits for the next request; the rest is the
// socket's.
type clientConn struct {
	net.Conn
	io    rawIO
	conns *clientConns

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

	// armed says the response now being written is whole in the server's
	// buffer and the connection stays open after it: its one Write, the
	// next one shorter than the buffer, also waits for the next request.
	// Go's poller has a read try first and wait only after EAGAIN, so the
	// server's read of the next request right after a response is a wasted
	// system call per request; waiting inside the write saves it (see
	// writeThenRead). The handler arms it; the next request disarms it.
	armed bool
	// waiting is set while a write waits for the next request; stop reads
	// it from another goroutine.
	waiting atomic.Bool
	// What the wait read of the next request, handed out by the next Read.
	early    []byte
	earlyBuf *[]byte
	earlyErr error

	// writeThenRead's state, with its callback made once.
	awaitFn   func(fd uintptr) bool
	pending   []byte // left to write
	wrote     bool   // pending was written whole
	writeErr  syscall.Errno
	readErr   syscall.Errno
	readBytes int
}

// deadlineSlack is how much earlier than asked a read deadline may fall.
const deadlineSlack = time.Second

// earlyBufs hold the start of a next request read during a write's wait;
// the server takes it at once, so a few buffers serve every connection.
var earlyBufs = sync.Pool{New: func() any { b := make([]byte, 4<<10); return &b }}

func (c *clientConn) Read(p []byte) (int, error) {
	if len(c.early) > 0 {
		n := copy(p, c.early)
		c.early = c.early[n:]
		if len(c.early) == 0 {
			earlyBufs.Put(c.earlyBuf)
			c.early, c.earlyBuf = nil, nil
		}
		return n, nil
	}
	if err := c.earlyErr; err != nil {
		c.earlyErr = nil
		return 0, err
	}
	if err := c.applyReadDeadline(); err != nil {
		return 0, err
	}
	return c.io.Read(p)
}

func (c *clientConn) Write(p []byte) (int, error) {
	if c.armed && len(p) < clientWriteBuffer {
		c.armed = false
		return c.writeThenAwait(p)
	}
	return c.io.Write(p)
}

// arm is called by the handler once a response is ready to be written
// whole (set false at the start of each request).
func (c *clientConn) arm(on bool) { c.armed = on }

func (c *clientConn) Close() error {
	if c.conns != nil {
		c.conns.remove(c)
	}
	if c.earlyBuf != nil {
		earlyBufs.Put(c.earlyBuf)
		c.early, c.earlyBuf = nil, nil
	}
	return c.Conn.Close()
}

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

// writeThenAwait writes p, the last bytes of a response, and waits under
// the idle deadline for the next request, whose first bytes the next Read
// returns. The wait is armed before p goes out: RawConn.Read resets the
// poller's readiness, then calls writeThenRead, which writes and asks to
// wait, and the poller wakes it when the client sends again. Readiness
// cannot be missed, since the client sends nothing new before it has the
// response; a stray wake-up only costs the read that finds nothing. If the
// wait ends without a request (the deadline, or stop), the response is
// still written, and the next Read does the usual read and wait.
func (c *clientConn) writeThenAwait(p []byte) (int, error) {
	c.waiting.Store(true)
	defer c.waiting.Store(false)
	if c.conns == nil || c.conns.closing.Load() || c.earlyBuf != nil || c.earlyErr != nil {
		return c.io.Write(p)
	}
	if c.conns.idle > 0 {
		c.wantRead = time.Now().Add(c.conns.idle)
	}
	if err := c.applyReadDeadline(); err != nil {
		return c.io.Write(p)
	}
	c.pending, c.wrote, c.writeErr, c.readErr, c.readBytes = p, false, 0, 0, 0
	c.earlyBuf = earlyBufs.Get().(*[]byte)
	err := c.io.rc.Read(c.awaitFn)
	written := len(p) - len(c.pending)
	c.pending = nil
	if err != nil {
		// The deadline, or stop, set outside applyReadDeadline: make the
		// next Read set the deadline again.
		c.hasRead = time.Unix(1, 0)
	}
	switch {
	case c.writeErr != 0:
		c.dropEarly()
		return written, c.io.opError("write", c.writeErr)
	case !c.wrote:
		// The socket's buffer was full, or the wait ended before the
		// write: finish it the usual way.
		c.dropEarly()
		n, werr := c.io.Write(p[written:])
		return written + n, werr
	case err != nil:
		c.dropEarly()
	case c.readErr != 0:
		c.dropEarly()
		c.earlyErr = c.io.opError("read", c.readErr)
	case c.readBytes == 0:
		c.dropEarly()
		c.earlyErr = io.EOF
	default:
		c.early = (*c.earlyBuf)[:c.readBytes]
	}
	return len(p), nil
}

func (c *clientConn) dropEarly() {
	if c.earlyBuf != nil {
		earlyBufs.Put(c.earlyBuf)
		c.earlyBuf = nil
	}
}

// writeThenRead is writeThenAwait's callback: the first call writes, the
// next ones read; false asks the poller to wait for readability.
func (c *clientConn) writeThenRead(fd uintptr) bool {
	if !c.wrote {
		for len(c.pending) > 0 {
			n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(c.pending))), uintptr(len(c.pending)))
			switch errno {
			case 0:
				c.pending = c.pending[n:]
				continue
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return true // no room: writeThenAwait writes the rest
			}
			c.writeErr = errno
			return true
		}
		c.wrote = true
		return false
	}
	buf := *c.earlyBuf
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(buf))), uintptr(len(buf)))
		switch errno {
		case 0:
			c.readBytes = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.readErr = errno
		return true
	}
}

// SyscallConn keeps the socket reachable (clientGone peeks at it).
func (c *clientConn) SyscallConn() (syscall.RawConn, error) { return c.io.rc, nil }
