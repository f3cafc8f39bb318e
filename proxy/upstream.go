package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/posterctl/posterctl/proxy/internal/sockio"
)

// upstream is the connection pool to one backend, and the one place where a
// request meets the wire. It is ours rather than fasthttp.HostClient because
// the retry rule needs to know whether any byte of this attempt was written,
// and a pooled connection must be checked for a close by the backend before
// it is reused (HostClient offers neither).
type upstream struct {
	addr        string
	dialer      net.Dialer
	idleTimeout time.Duration
	headerWait  time.Duration
	maxIdle     int
	// Responses up to this size are read whole, so the connection goes back
	// to the pool at once; larger or chunked ones stream to the client.
	maxBuffered int

	mu     sync.Mutex
	idle   []*upConn // a stack: the most recently used is warmest
	closed bool

	counters codeCounters // this backend's request metrics, by status
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
	return n, err
}

// errDial marks a failure to connect: nothing was sent.
type errDial struct{ err error }

func (e *errDial) Error() string { return "connect: " + e.err.Error() }
func (e *errDial) Unwrap() error { return e.err }

// errHeaderTimeout is a backend that accepted the request but sent no
// response header in time.
var errHeaderTimeout = errors.New("no response header in time")

func newUpstream(addr string, cfg *Config) *upstream {
	return &upstream{
		addr:        addr,
		dialer:      net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second},
		idleTimeout: cfg.IdleConnTimeout,
		headerWait:  cfg.ResponseHeaderTimeout,
		maxIdle:     cfg.MaxIdleConnsPerHost,
		maxBuffered: int(cfg.MaxReplayBody),
	}
}

// get returns a live pooled connection or dials a new one.
func (u *upstream) get() (*upConn, error) { return u.getAt(time.Now(), true) }

// getAt is get with the caller's clock reading: the request path has one.
// peek false skips the system call that checks a pooled connection for a
// close by the backend: for a request that may be sent again, roundTrip
// instead resends it on a fresh connection if the pooled one turns out dead.
func (u *upstream) getAt(now time.Time, peek bool) (*upConn, error) {
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
		u.mu.Unlock()
		// Bytes in br that nobody asked for: the stream is out of step.
		if now.Sub(c.idleFrom) < u.idleTimeout && c.br.Buffered() == 0 && (!peek || c.alive()) {
			c.reused = true
			return c, nil
		}
		c.conn.Close()
	}
	return u.dial()
}

// dial opens a new connection to the backend.
func (u *upstream) dial() (*upConn, error) {
	conn, err := u.dialer.Dial("tcp", u.addr)
	if err != nil {
		return nil, &errDial{err}
	}
	c := &upConn{conn: conn}
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

func (u *upstream) put(c *upConn) { u.putAt(c, time.Now()) }

func (u *upstream) putAt(c *upConn, now time.Time) {
	c.idleFrom = now
	c.reused = false
	u.mu.Lock()
	if u.closed || len(u.idle) >= u.maxIdle {
		u.mu.Unlock()
		c.conn.Close()
		return
	}
	u.idle = append(u.idle, c)
	// get takes from the top, so connections left at the bottom by a past
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

// close drops idle connections and stops pooling new ones.
func (u *upstream) close() {
	u.mu.Lock()
	idle := u.idle
	u.idle, u.closed = nil, true
	u.mu.Unlock()
	for _, c := range idle {
		c.conn.Close()
	}
}

// roundTrip sends req and reads the response into resp. sent reports whether
// any request byte reached the socket. On success a body of known length up
// to maxBuffered is read into resp and the connection pooled; a larger or
// chunked one is left to the returned stream, which pools or closes the
// connection when it is closed.
//
// start is when the request arrived: it stands in for the clock when judging
// a pooled connection's idle time, which has far more slack than a request
// takes to get here (its body is read under the read timeout).
//
// resendable says the request may be sent twice (see retryable). Such a
// request skips the liveness peek at a pooled connection; if that connection
// fails before any byte of an answer (the backend had closed it, or died),
// the request goes once more to the same backend on a new connection, as
// net/http's Transport does. A backend that is gone then refuses the dial,
// which is an error from before sending. Other requests keep the peek, and
// the pool never hands them a connection it knows to be closed.
func (u *upstream) roundTrip(req *fasthttp.Request, resp *fasthttp.Response, head, resendable bool, start time.Time) (stream *upstreamBody, sent bool, err error) {
	c, err := u.getAt(start, !resendable)
	if err != nil {
		return nil, false, err
	}
	stream, sent, err = u.exchange(c, req, resp, head)
	if err != nil && resendable && c.reused && c.read == 0 && !errors.Is(err, errHeaderTimeout) {
		if c, err = u.dial(); err != nil {
			return nil, false, err
		}
		resp.Reset()
		stream, sent, err = u.exchange(c, req, resp, head)
	}
	return stream, sent, err
}

// exchange is one request and response on c, which it pools or closes.
func (u *upstream) exchange(c *upConn, req *fasthttp.Request, resp *fasthttp.Response, head bool) (stream *upstreamBody, sent bool, err error) {
	c.written, c.read = 0, 0
	if err = req.Write(c.bw); err != nil {
		c.conn.Close()
		return nil, c.written > 0, fmt.Errorf("write request: %w", err)
	}
	// Moving a deadline costs a timer update; one set within the last
	// second is as good, so the header wait is 29 to 30 s. The clock is
	// read after the body, which may have been a long upload, was written
	// out; the header wait starts with the last bytes.
	now := time.Now()
	if c.deadline.Sub(now) < u.headerWait-time.Second {
		c.deadline = now.Add(u.headerWait)
		if err := c.conn.SetReadDeadline(c.deadline); err != nil {
			c.conn.Close()
			return nil, c.written > 0, err
		}
	}
	if werr, err := c.send(); werr != nil {
		c.conn.Close()
		return nil, c.written > 0, fmt.Errorf("write request: %w", werr)
	} else if err != nil {
		c.conn.Close()
		return nil, true, readError(err)
	}
	resp.SkipBody = head
	if err := resp.Header.Read(c.br); err != nil {
		c.conn.Close()
		return nil, true, readError(err)
	}
	keep := !resp.Header.ConnectionClose()
	// The client's connection is the server's business, not the backend's.
	resp.Header.ResetConnectionClose()
	if st := resp.StatusCode(); head || st < 200 || st == 204 || st == 304 {
		u.release(c, keep, now)
		return nil, true, nil
	}
	n := resp.Header.ContentLength()
	if n >= 0 && n <= u.maxBuffered {
		// Into the response's own pooled buffer: no copy, no allocation.
		if err := resp.ReadBody(c.br, u.maxBuffered); err != nil {
			c.conn.Close()
			return nil, true, fmt.Errorf("read response body: %w", err)
		}
		u.release(c, keep, now)
		return nil, true, nil
	}
	// Streamed: no deadline for the body, which may legitimately take long.
	c.deadline = time.Time{}
	if err := c.conn.SetReadDeadline(time.Time{}); err != nil {
		c.conn.Close()
		return nil, true, err
	}
	s := &upstreamBody{u: u, c: c, keep: keep}
	switch {
	case n >= 0:
		s.r = io.LimitReader(c.br, int64(n))
	case n == -1:
		s.r, s.chunked = httputil.NewChunkedReader(c.br), true
	default: // identity until close
		s.r, s.keep = c.br, false
	}
	return s, true, nil
}

// release pools or closes c. now may be from before the response came: the
// connection then counts as idle a little longer than it was, which only
// retires it sooner.
// readError tells a response that did not come in time from one that failed.
func readError(err error) error {
	var ne net.Error
	if errors.Is(err, fasthttp.ErrTimeout) || (errors.As(err, &ne) && ne.Timeout()) {
		return errHeaderTimeout
	}
	return fmt.Errorf("read response: %w", err)
}

// send writes out what bw holds and waits for the response to begin, with
// the wait armed before the write (see sockio.Conn.FlushThenWait). That
// holds only if no byte of the request went out before: a request larger
// than bw has been partly (or, written through, wholly) sent already, and
// the backend may have answered, so it is flushed and read the usual way.
func (c *upConn) send() (writeErr, waitErr error) {
	if c.written > 0 {
		return c.bw.Flush(), nil
	}
	return c.io.FlushThenWait()
}

func (u *upstream) release(c *upConn, keep bool, now time.Time) {
	if keep {
		u.putAt(c, now)
	} else {
		c.conn.Close()
	}
}

// upstreamBody streams a response body from the backend; closing it returns
// the connection to the pool if the body was read to its end.
type upstreamBody struct {
	u       *upstream
	c       *upConn
	r       io.Reader
	chunked bool
	keep    bool
	done    bool
	closed  bool
}

func (s *upstreamBody) Read(p []byte) (int, error) {
	if s.done {
		return 0, io.EOF
	}
	n, err := s.r.Read(p)
	if err == io.EOF {
		s.done = true
		if s.chunked && !s.skipTrailers() {
			s.keep = false
		}
	}
	return n, err
}

// skipTrailers consumes the trailer section that ends a chunked body, so the
// connection is positioned at the next response.
func (s *upstreamBody) skipTrailers() bool {
	for {
		line, err := s.c.br.ReadSlice('\n')
		if err != nil {
			return false
		}
		if len(line) <= 2 { // "\r\n"
			return true
		}
	}
}

func (s *upstreamBody) close() {
	if s.closed {
		return
	}
	s.closed = true
	if s.done && s.keep {
		s.u.put(s.c)
	} else {
		s.c.conn.Close()
	}
}
