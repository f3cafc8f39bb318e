package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// bodyKind is how a request body can be sent again.
type bodyKind int

const (
	bodyNone     bodyKind = iota // nothing to send
	bodyBuffered                 // kept in memory, replayable on every attempt
	bodyStreamed                 // too large to keep: can be sent once
)

func (k bodyKind) String() string {
	switch k {
	case bodyBuffered:
		return "buffered"
	case bodyStreamed:
		return "streamed"
	}
	return "none"
}

// readRequestBody keeps a body of up to max bytes in memory, so every attempt
// can send it again; a larger one, or a chunked one that turns out larger,
// is passed on as a stream that remembers whether anyone has read from it.
//
// Past the header, the body is read under an idle timeout rather than the
// server's read timeout, which covers the whole request: a large upload may
// take long, but no byte for idle is a stall, of any body. A read error is
// the client's (see clientBodyError), never a backend's.
//
// A body of known length up to max is read into a buffer from bufs, which
// pooled holds: the caller gives it back (bufs.put) once done with the
// request.
func readRequestBody(ctx *fasthttp.RequestCtx, max int64, idle time.Duration, bufs *bodyBufs) (kind bodyKind, body []byte, stream *onceBody, pooled *[]byte, cerr *clientBodyError) {
	r := &ctx.Request
	n := int64(r.Header.ContentLength())
	if !r.IsBodyStream() {
		if b := r.Body(); len(b) > 0 {
			return bodyBuffered, b, nil, nil, nil
		}
		return bodyNone, nil, nil, nil, nil
	}
	if n == 0 {
		return bodyNone, nil, nil, nil, nil
	}
	if n > 0 && n <= max {
		h := bufs.get(int(n))
		if err := readFull(ctx, idle, *h); err != nil {
			bufs.put(h)
			return bodyNone, nil, nil, nil, &clientBodyError{err}
		}
		return bodyBuffered, *h, nil, h, nil
	}
	s := &idleReader{r: ctx.RequestBodyStream(), conn: ctx.Conn(), idle: idle}
	if n > max {
		return bodyStreamed, nil, &onceBody{r: s, left: n}, nil, nil
	}
	// Chunked: keep what fits, stream the rest.
	buf, err := io.ReadAll(io.LimitReader(s, max+1))
	if err != nil {
		return bodyNone, nil, nil, nil, &clientBodyError{err}
	}
	if int64(len(buf)) <= max {
		return bodyBuffered, buf, nil, nil, nil
	}
	return bodyStreamed, nil, &onceBody{r: io.MultiReader(bytes.NewReader(buf), s), left: -1}, nil, nil
}

// readFull fills buf from the request's body stream. What the server read
// with the header comes first and needs no socket read, so no deadline of
// its own (the server's, set for the header, still stands); only what is
// left is read under the idle timeout, through an idleReader.
func readFull(ctx *fasthttp.RequestCtx, idle time.Duration, buf []byte) error {
	r := ctx.RequestBodyStream()
	got, err := r.Read(buf)
	if got == len(buf) {
		return nil
	}
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	_, err = io.ReadFull(&idleReader{r: r, conn: ctx.Conn(), idle: idle}, buf[got:])
	return err
}

// bodyBufs keeps the buffers of replayable bodies for reuse: a request's
// buffer is taken when its body is read and given back when forward is
// done with the request. Buffers above maxPooledBody are left to the
// collector, so the pool never holds much.
type bodyBufs struct{ pool sync.Pool }

const maxPooledBody = 64 << 10

// get returns a buffer of n bytes, held by what it points to.
func (p *bodyBufs) get(n int) *[]byte {
	if n > maxPooledBody {
		b := make([]byte, n)
		return &b
	}
	if h, ok := p.pool.Get().(*[]byte); ok {
		if cap(*h) >= n {
			*h = (*h)[:n]
			return h
		}
		p.pool.Put(h)
	}
	b := make([]byte, n, max(n, 4<<10))
	return &b
}

// put gives back what get returned.
func (p *bodyBufs) put(h *[]byte) {
	if cap(*h) <= maxPooledBody {
		p.pool.Put(h)
	}
}

// idleReader reads a request body with the connection's read deadline moved
// to idle from now before each read. On Linux the client connection applies
// a deadline lazily and leaves one within a second of the last as it is
// (sockio.ClientConn), so this costs a clock reading per read.
type idleReader struct {
	r    io.Reader
	conn net.Conn
	idle time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	if err := r.conn.SetReadDeadline(time.Now().Add(r.idle)); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// clientBodyError is a request body the client did not deliver: it stalled
// (a timeout), closed early, or broke the framing.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "read request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// stalled tells a body that stopped coming from one that broke off.
func (e *clientBodyError) stalled() bool {
	var ne net.Error
	return errors.As(e.err, &ne) && ne.Timeout()
}

// onceBody is a streamed request body. fasthttp closes a request's body
// stream once the request is written or released; ignoring Close keeps an
// unread stream usable for the next backend, and touched tells whether that
// is still allowed.
//
// A read error, or an end before the declared length, is remembered in err:
// the attempt then failed because of the client, and the backend, which got
// a cut-off request, is not to blame.
type onceBody struct {
	r       io.Reader
	left    int64 // bytes still due under Content-Length; -1 for chunked
	touched atomic.Bool
	err     *clientBodyError
}

func (o *onceBody) Read(p []byte) (int, error) {
	o.touched.Store(true)
	n, err := o.r.Read(p)
	if o.left >= 0 {
		o.left -= int64(n)
		if err == io.EOF && o.left > 0 {
			err = io.ErrUnexpectedEOF
		}
	}
	if err != nil && err != io.EOF {
		o.err = &clientBodyError{err}
		return n, o.err
	}
	return n, err
}

func (o *onceBody) Close() error { return nil }
