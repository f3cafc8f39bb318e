package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"time"

	"github.com/valyala/fasthttp"
)

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
func (u *connPool) roundTrip(req *fasthttp.Request, resp *fasthttp.Response, head, resendable bool, start time.Time) (stream *upstreamBody, sent bool, err error) {
	c, err := u.getAt(start, !resendable)
	if err != nil {
		return nil, false, err
	}
	stream, sent, err = u.exchange(c, req, resp, head)
	if err != nil && c.abandoned.Load() {
		return nil, sent, errHung
	}
	if err != nil && resendable && c.reused && c.read == 0 && !errors.Is(err, errHeaderTimeout) {
		if c, err = u.dial(); err != nil {
			return nil, false, err
		}
		resp.Reset()
		stream, sent, err = u.exchange(c, req, resp, head)
		if err != nil && c.abandoned.Load() {
			return nil, sent, errHung
		}
	}
	return stream, sent, err
}

// exchange is one request and response on c, which it pools or closes.
func (u *connPool) exchange(c *upConn, req *fasthttp.Request, resp *fasthttp.Response, head bool) (stream *upstreamBody, sent bool, err error) {
	c.written, c.read = 0, 0
	if err = req.Write(c.bw); err != nil {
		u.discard(c)
		return nil, c.written > 0, fmt.Errorf("write request: %w", err)
	}
	// Moving a deadline costs a timer update; one set within the last
	// second is as good, so the header wait is 29 to 30 s. The clock is
	// read after the body, which may have been a long upload, was written
	// out; the header wait starts with the last bytes.
	now := time.Now()
	c.waitSince.Store(now.UnixNano())
	if c.deadline.Sub(now) < u.headerWait-time.Second {
		c.deadline = now.Add(u.headerWait)
		if err := c.conn.SetReadDeadline(c.deadline); err != nil {
			u.discard(c)
			return nil, c.written > 0, err
		}
	}
	if werr, err := c.send(); werr != nil {
		u.discard(c)
		return nil, c.written > 0, fmt.Errorf("write request: %w", werr)
	} else if err != nil {
		u.discard(c)
		return nil, true, readError(err)
	}
	resp.SkipBody = head
	if err := readFinalHeader(&resp.Header, c.br, false); err != nil {
		u.discard(c)
		return nil, true, err
	}
	c.waitSince.Store(0)
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
			u.discard(c)
			return nil, true, fmt.Errorf("read response body: %w", err)
		}
		u.release(c, keep, now)
		return nil, true, nil
	}
	// Streamed: no deadline for the body, which may legitimately take long.
	c.deadline = time.Time{}
	if err := c.conn.SetReadDeadline(time.Time{}); err != nil {
		u.discard(c)
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

// release pools or closes c. now may be from before the response came: the
// connection then counts as idle a little longer than it was, which only
// retires it sooner.
func (u *connPool) release(c *upConn, keep bool, now time.Time) {
	// Bytes past the response are out of step: never pooled.
	if keep && c.br.Buffered() == 0 {
		u.putAt(c, now)
	} else {
		u.discard(c)
	}
}

// upstreamBody streams a response body from the backend; closing it returns
// the connection to the pool if the body was read to its end.
type upstreamBody struct {
	u       *connPool
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
	if s.done && s.keep && s.c.br.Buffered() == 0 {
		s.u.put(s.c)
	} else {
		s.u.discard(s.c)
	}
}
