package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/posterctl/posterctl/proxy/internal/sockio"
)

// Proxy is the load balancer's request handler. It runs on fasthttp, chosen
// by measurement on this 2-core machine (CPU of the balancer process per
// proxied request, 64 connections, small GETs): a net/http ReverseProxy with
// a tuned Transport and pooled buffers cost 47-55 µs, a bare fasthttp proxy
// 18-19 µs, and this handler, with every behaviour below, 21-25 µs at first;
// 15.7-16.3 µs since its sockets use raw calls (rawconn.go), client read
// deadlines move lazily (clientConn) and requests that may be sent twice
// skip the pooled-connection peek, against nginx 15.9-16.0 and HAProxy
// 18.1 in the same runs (BenchmarkLoadBalancer, on a quiet machine).
// Three quarters of it is the kernel's loopback TCP work. The behaviours
// ReverseProxy gave for free (hop-by-hop removal, X-Forwarded-*, upgrades,
// flushing streams) are done here and covered by tests.
type Proxy struct {
	cfg      *Config
	pool     *backendSet // swapped whole when the set changes; see pool.go
	selector Selector
	metrics  *metrics
	log      zerolog.Logger
	onChange func(*Backend, Transition, error, string)

	idPrefix string
	idSeq    atomic.Uint64
}

// newProxy builds the handler. cfg must have defaults set.
func newProxy(cfg *Config, pool *backendSet, m *metrics, logger zerolog.Logger, onChange func(*Backend, Transition, error, string)) *Proxy {
	var seed [4]byte
	_, _ = rand.Read(seed[:])
	p := &Proxy{
		cfg:      cfg,
		pool:     pool,
		selector: &RoundRobin{},
		metrics:  m,
		log:      logger,
		onChange: onChange,
		idPrefix: hex.EncodeToString(seed[:]) + "-",
	}
	return p
}

func (p *Proxy) newID() string {
	var b [32]byte
	out := append(b[:0], p.idPrefix...)
	out = strconv.AppendUint(out, p.idSeq.Add(1), 16)
	return string(out)
}

// exchange follows one client request through its attempts and, for a
// streamed response, to the end of the response.
type exchange struct {
	p        *Proxy
	ctx      *fasthttp.RequestCtx
	start    time.Time
	end      time.Time // when known before finish, saving a clock reading
	id       string
	backend  *Backend // of the last attempt, for the access line
	holding  *Backend // whose in-flight count this request holds
	attempts int
	status   int
	errMsg   string
	finished bool

	stream *upstreamBody // a streamed response body
}

// Handle is the fasthttp request handler.
func (p *Proxy) Handle(ctx *fasthttp.RequestCtx) {
	// The server read the clock when the request arrived.
	start := ctx.Time()
	if start.IsZero() {
		start = time.Now()
	}
	x := &exchange{p: p, ctx: ctx, start: start}
	p.metrics.inFlight.Add(1)
	h := &ctx.Request.Header
	if id := h.Peek("X-Request-Id"); len(id) > 0 {
		x.id = string(id)
	} else {
		x.id = p.newID()
	}
	if h.ConnectionUpgrade() && len(h.Peek("Upgrade")) > 0 {
		p.upgrade(x)
		return
	}
	p.forward(x)
}

func (p *Proxy) forward(x *exchange) {
	ctx := x.ctx
	in := &ctx.Request.Header
	out := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(out)
	in.CopyTo(&out.Header)
	if hasHopByHop(&out.Header) {
		stripRequestHopByHop(&out.Header, false)
		out.Header.Del("Expect") // the server has already answered 100-continue
	} else {
		out.Header.ResetConnectionClose()
	}
	out.Header.SetNoDefaultContentType(true)
	var scratch [256]byte
	setForwarded(&out.Header, in, ctx.RemoteAddr(), scratch[:0])
	out.Header.Set("X-Request-Id", x.id)
	noHost := len(out.Header.Host()) == 0
	hasKey := len(in.Peek("Idempotency-Key")) > 0
	head := in.IsHead()

	kind, reqBody, stream, err := readRequestBody(ctx, p.cfg.MaxReplayBody)
	if err != nil {
		p.fail(x, fasthttp.StatusBadRequest, "could not read the request body", err)
		return
	}

	// A request that may go to a second backend after it was sent may as
	// well go to the same one again when a pooled connection was dead.
	resendable := retryable(string(in.Method()), true, hasKey, kind, false)
	var tried Tried
	reached := false
	var lastErr error
	pool := p.pool.load()
	for {
		b := p.selector.Select(pool, tried)
		if b == nil {
			break
		}
		tried = tried.With(b)
		x.attempts++
		if x.attempts > 1 {
			p.metrics.retries.Inc()
		}
		x.backend = b
		b.requests.Add(1)
		if noHost {
			out.Header.SetHost(b.addr)
		}
		switch kind {
		case bodyBuffered:
			out.SetBodyRaw(reqBody)
		case bodyStreamed:
			out.SetBodyStream(stream, max(in.ContentLength(), -1))
		}

		// Select has counted the request in b's in-flight number.
		ustream, sent, err := b.up.roundTrip(out, &ctx.Response, head, resendable, x.start)
		if err == nil {
			b.recordSuccess()
			x.holding = b
			// One clock reading serves the check below and, for a buffered
			// response, the access line's duration.
			x.end = time.Now()
			// A client that left can only have done so while waiting; the
			// check costs a system call, so only slow answers get it.
			if x.end.Sub(x.start) >= p.cfg.ClientGoneCheckAfter && clientGone(ctx) {
				// Nobody to answer; the backend did its part.
				if ustream != nil {
					ustream.close()
				}
				x.status, x.errMsg = 499, "client went away"
				ctx.Response.Reset()
				ctx.SetConnectionClose()
				x.finish()
				return
			}
			p.respond(x, ustream)
			return
		}
		b.inFlight.Add(-1)
		ctx.Response.Reset()
		lastErr = err
		f := classify(err, sent)
		if f.sent {
			reached = true
		}
		b.recordFailure(err)
		// A refused or broken connection ejects at once: when a backend dies,
		// the first failure keeps other requests off it. A slow answer is for
		// the active checks to judge.
		if !f.timeout {
			if tr := b.Eject(err); tr != NoChange {
				p.metrics.ejections.WithLabelValues(b.addr).Inc()
				p.onChange(b, tr, err, "request")
			}
		}
		if f.timeout {
			p.fail(x, fasthttp.StatusGatewayTimeout, "backend sent no response in time", err)
			return
		}
		touched := stream != nil && stream.touched.Load()
		if !retryable(string(in.Method()), f.sent, hasKey, kind, touched) {
			p.fail(x, fasthttp.StatusBadGateway, "backend failed after the request was sent; not retried because it may have been processed", err)
			return
		}
	}
	if reached {
		p.fail(x, fasthttp.StatusBadGateway, "every backend failed", lastErr)
		return
	}
	p.fail(x, fasthttp.StatusServiceUnavailable, "no backend available", lastErr)
}

// respond hands the backend's response to the server. A streamed body goes
// through the exchange, whose CloseWithError learns how the write to the
// client ended and writes the access line then; a buffered one is in the
// response already, and a client that left while waiting for it has been
// caught by clientGone.
func (p *Proxy) respond(x *exchange, stream *upstreamBody) {
	resp := &x.ctx.Response
	if hasHopByHopResponse(&resp.Header) {
		stripResponseHopByHop(&resp.Header)
	}
	resp.Header.Set("X-Request-Id", x.id)
	x.status = resp.StatusCode()
	if stream == nil {
		x.finish()
		return
	}
	x.stream = stream
	x.end = time.Time{} // the end is when the stream is done
	n := resp.Header.ContentLength()
	if n < 0 {
		n = -1 // chunked to the client, flushed chunk by chunk
	}
	resp.SetBodyStream(streamedBody{x}, n)
}

// streamedBody is what the server reads a streamed response body from. It
// offers no WriteTo on purpose: the server's chunk-by-chunk copy is what
// flushes each piece as it arrives.
type streamedBody struct{ x *exchange }

func (b streamedBody) Read(p []byte) (int, error)     { return b.x.stream.Read(p) }
func (b streamedBody) CloseWithError(err error) error { return b.x.closeWithError(err) }

// closeWithError is called by the server once the response is written, with
// the write error if the client went away.
func (x *exchange) closeWithError(err error) error {
	if x.stream != nil {
		x.stream.close()
	}
	if err != nil {
		x.errMsg = "client went away: " + err.Error()
		x.status = 499
	}
	x.finish()
	return nil
}

// finish releases the request's hold on its backend, counts it and writes
// its access line, once.
func (x *exchange) finish() {
	if x.finished {
		return
	}
	x.finished = true
	p := x.p
	if x.holding != nil {
		x.holding.inFlight.Add(-1)
	}
	p.metrics.inFlight.Add(-1)
	end := x.end
	if end.IsZero() {
		end = time.Now()
	}
	d := end.Sub(x.start)
	addr := "none"
	if x.backend != nil {
		addr = x.backend.addr
	}
	p.metrics.observe(x.backend, addr, x.status, d)
	ev := p.log.Info()
	if x.errMsg != "" {
		ev = ev.Str("error", x.errMsg)
	}
	ctx := x.ctx
	var remote [64]byte
	ev.Bytes("method", ctx.Method()).Bytes("path", ctx.Path()).Int("status", x.status).
		Str("backend", addr).Int("attempts", x.attempts).Dur("duration", d).
		Str("request_id", x.id).Bytes("remote", appendAddr(remote[:0], ctx.RemoteAddr())).Msg("request")
}

// appendAddr formats a client address as net.Addr's String does, without
// allocating for the usual TCP address.
func appendAddr(dst []byte, a net.Addr) []byte {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		// A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d, which
		// String prints as a.b.c.d.
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).AppendTo(dst)
	}
	return append(dst, a.String()...)
}

// hasHopByHop reports whether a request carries any header that
// stripRequestHopByHop or the Expect rule would remove. Most requests carry
// none, and one pass over the headers is far cheaper than a lookup per name.
func hasHopByHop(h *fasthttp.RequestHeader) bool {
	found := false
	for k := range h.All() {
		if isHopByHopOrExpect(k) {
			found = true
			break
		}
	}
	return found
}

// hasHopByHopResponse is hasHopByHop for a backend's response, whose
// Transfer-Encoding fasthttp keeps to itself.
func hasHopByHopResponse(h *fasthttp.ResponseHeader) bool {
	found := false
	for k := range h.All() {
		if isHopByHop(k) {
			found = true
			break
		}
	}
	return found
}

func isHopByHop(k []byte) bool {
	for _, name := range hopByHop() {
		if len(k) == len(name) && bytes.EqualFold(k, []byte(name)) {
			return true
		}
	}
	return false
}

func isHopByHopOrExpect(k []byte) bool {
	return isHopByHop(k) || len(k) == len("Expect") && bytes.EqualFold(k, []byte("Expect"))
}

type errorBody struct {
	Error     string `json:"error"`
	RequestID string `json:"request_id,omitempty"`
}

// fail answers with the proxy's own JSON error.
func (p *Proxy) fail(x *exchange, status int, msg string, cause error) {
	x.errMsg = msg
	if cause != nil {
		x.errMsg = msg + ": " + cause.Error()
	}
	x.status = status
	resp := &x.ctx.Response
	resp.Reset()
	resp.SetStatusCode(status)
	resp.Header.SetContentType("application/json")
	resp.Header.Set("Cache-Control", "no-store")
	resp.Header.Set("X-Request-Id", x.id)
	if status == fasthttp.StatusServiceUnavailable {
		resp.Header.Set("Retry-After", strconv.Itoa(int((p.cfg.RetryAfter+time.Second-1)/time.Second)))
	}
	body, _ := json.Marshal(errorBody{Error: msg, RequestID: x.id})
	resp.SetBodyRaw(append(body, '\n'))
	x.finish()
}

// failure is a classified upstream error.
type failure struct {
	sent    bool // request bytes reached the backend's socket
	dial    bool // no connection could be made
	timeout bool // no response header in time
}

func classify(err error, sent bool) failure {
	var de *errDial
	switch {
	case errors.As(err, &de):
		return failure{dial: true}
	case errors.Is(err, errHeaderTimeout):
		return failure{sent: sent, timeout: true}
	}
	return failure{sent: sent}
}

// fasthttpLogger sends fasthttp's own messages through zerolog.
type fasthttpLogger struct{ log zerolog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn().Msg(fmt.Sprintf(format, args...))
}

// readRequestBody keeps a body of up to max bytes in memory, so every attempt
// can send it again; a larger one, or a chunked one that turns out larger,
// is passed on as a stream that remembers whether anyone has read from it.
func readRequestBody(ctx *fasthttp.RequestCtx, max int64) (bodyKind, []byte, *onceBody, error) {
	r := &ctx.Request
	n := int64(r.Header.ContentLength())
	if !r.IsBodyStream() {
		if b := r.Body(); len(b) > 0 {
			return bodyBuffered, b, nil, nil
		}
		return bodyNone, nil, nil, nil
	}
	if n == 0 {
		return bodyNone, nil, nil, nil
	}
	s := ctx.RequestBodyStream()
	if n > max {
		// The read timeout guards the header; a large upload may take longer.
		_ = ctx.Conn().SetReadDeadline(time.Time{})
		return bodyStreamed, nil, &onceBody{r: s}, nil
	}
	if n > 0 {
		buf := make([]byte, n)
		if _, err := io.ReadFull(s, buf); err != nil {
			return bodyNone, nil, nil, fmt.Errorf("read request body: %w", err)
		}
		return bodyBuffered, buf, nil, nil
	}
	// Chunked: keep what fits, stream the rest.
	buf, err := io.ReadAll(io.LimitReader(s, max+1))
	if err != nil {
		return bodyNone, nil, nil, fmt.Errorf("read request body: %w", err)
	}
	if int64(len(buf)) <= max {
		return bodyBuffered, buf, nil, nil
	}
	_ = ctx.Conn().SetReadDeadline(time.Time{})
	return bodyStreamed, nil, &onceBody{r: io.MultiReader(bytes.NewReader(buf), s)}, nil
}

// clientGone peeks, without blocking or consuming, at the client's
// connection: an end of stream there means the client left while its
// request was at the backend.
func clientGone(ctx *fasthttp.RequestCtx) bool {
	return sockio.PeekConn(ctx.Conn()) == sockio.PeekClosed
}
