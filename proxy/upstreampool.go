package proxy

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posterctl/posterctl/proxy/internal/sockio"
)

// connPool is the connection pool to one backend; with roundtrip.go it is
// the one place where a request meets the wire. It is ours rather than fasthttp.HostClient because
// the retry rule needs to know whether any byte of this attempt was written,
// and a pooled connection must be checked for a close by the backend before
// it is reused (HostClient offers neither).
type connPool struct {
	addr        string
	dialer      net.Dialer
	idleTimeout time.Duration
	headerWait  time.Duration
	maxIdle     int
	// Responses up to this size are read whole, so the connection goes back
	// to the pool at once; larger or chunked ones stream to the client.
	maxBuffered int

	// heard counts reads that brought bytes from the backend, on any
	// connection; the hung watch (hung.go) samples it.
	heard atomic.Uint64

	mu     sync.Mutex
	idle   []*upConn // a stack: the most recently used is warmest
	busy   busyList  // connections taken for an attempt, for the hung watch
	closed bool
}

type upConn struct {
	conn     net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	written  int64 // bytes written since the attempt began
	read     int64 // bytes read since the attempt began
	reused   bool  // taken from the pool rather than dialed for this attempt
	idleFrom time.Time
	deadline time.Time // the read deadline now set

	// waitSince is when the attempt's request went out, in Unix
	// nanoseconds, while its response header is awaited; 0 otherwise.
	waitSince atomic.Int64
	// abandoned is set by the hung watch before it closes the connection:
	// the attempt then fails as errHung, whatever the read said.
	abandoned  atomic.Bool
	prev, next *upConn // in connPool.busy, under connPool.mu
	heard      *atomic.Uint64

	io sockio.Conn // reads, writes, the liveness peek and the send's wait
}

// Write counts what reaches the socket, which is what "sent" means.
func (c *upConn) Write(p []byte) (n int, err error) {
	n, err = c.io.Write(p)
	c.written += int64(n)
	return n, err
}

func (c *upConn) Read(p []byte) (n int, err error) {
	n, err = c.io.Read(p)
	c.read += int64(n)
	if n > 0 {
		c.heard.Add(1)
	}
	return n, err
}

// errDial marks a failure to connect: nothing was sent.
type errDial struct{ err error }

func (e *errDial) Error() string { return "connect: " + e.err.Error() }
func (e *errDial) Unwrap() error { return e.err }

// errHeaderTimeout is a backend that accepted the request but sent no
// response header in time.
var errHeaderTimeout = errors.New("no response header in time")

func newConnPool(addr string, cfg *Config) *connPool {
	return &connPool{
		addr:        addr,
		dialer:      net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second},
		idleTimeout: cfg.IdleConnTimeout,
		headerWait:  cfg.ResponseHeaderTimeout,
		maxIdle:     cfg.MaxIdleConnsPerHost,
		maxBuffered: int(cfg.MaxReplayBody),
	}
}

// getAt returns a live pooled connection or dials a new one; now is the
// caller's clock reading (the request path has one). peek false skips the system call that checks a pooled connection for a
// close by the backend: for a request that may be sent again, roundTrip
// instead resends it on a fresh connection if the pooled one turns out dead.
func (u *connPool) getAt(now time.Time, peek bool) (*upConn, error) {
	for {
		u.mu.Lock()
		n := len(u.idle)
		if n == 0 {
			u.mu.Unlock()
			break
		}
		c := u.idle[n-1]
		u.idle[n-1] = nil
		u.idle = u.idle[:n-1]
		u.busy.add(c)
		u.mu.Unlock()
		// Bytes in br that nobody asked for: the stream is out of step.
		if now.Sub(c.idleFrom) < u.idleTimeout && c.br.Buffered() == 0 && (!peek || c.alive()) {
			c.reused = true
			return c, nil
		}
		u.discard(c)
	}
	return u.dial()
}

// dial opens a new connection to the backend.
func (u *connPool) dial() (*upConn, error) {
	conn, err := u.dialer.Dial("tcp", u.addr)
	if err != nil {
		return nil, &errDial{err}
	}
	c := &upConn{conn: conn, heard: &u.heard}
	u.mu.Lock()
	u.busy.add(c)
	u.mu.Unlock()
	c.io.Init(conn)
	c.br = bufio.NewReaderSize(c, 8<<10)
	c.bw = bufio.NewWriterSize(c, 8<<10)
	c.io.SetFlush(c.bw.Flush)
	return c, nil
}

// alive peeks at an idle connection without blocking: a backend that closed
// it (idle timeout, or killed) has left an EOF there, and reusing it would
// turn a request that was never processed into one that "was sent". Bytes
// there that nobody asked for mean the stream is out of step: not alive
// either. (getAt checks for such bytes already read, in br.)
func (c *upConn) alive() bool { return c.io.Peek() == sockio.PeekEmpty }

func (u *connPool) put(c *upConn) { u.putAt(c, time.Now()) }

func (u *connPool) putAt(c *upConn, now time.Time) {
	c.idleFrom = now
	c.reused = false
	c.waitSince.Store(0)
	u.mu.Lock()
	u.busy.remove(c)
	if u.closed || len(u.idle) >= u.maxIdle || c.abandoned.Load() {
		u.mu.Unlock()
		c.conn.Close()
		return
	}
	u.idle = append(u.idle, c)
	// getAt takes from the top, so connections left at the bottom by a past
	// burst would wait there forever, closed by the backend: drop them.
	var stale *upConn
	if old := u.idle[0]; old != c && c.idleFrom.Sub(old.idleFrom) > u.idleTimeout {
		stale = old
		u.idle[0] = nil
		u.idle = u.idle[1:]
	}
	u.mu.Unlock()
	if stale != nil {
		stale.conn.Close()
	}
}

// discard closes c, which is never pooled again.
func (u *connPool) discard(c *upConn) {
	u.mu.Lock()
	u.busy.remove(c)
	u.mu.Unlock()
	c.conn.Close()
}

// close drops idle connections and stops pooling new ones.
func (u *connPool) close() {
	u.mu.Lock()
	idle := u.idle
	u.idle, u.closed = nil, true
	u.mu.Unlock()
	for _, c := range idle {
		c.conn.Close()
	}
}
