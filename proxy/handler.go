// Package proxy is posterctl's load balancer: round robin over the backends
// that pass their health checks, passive ejection on connection failures,
// retries that never replay a request that may have had effects, and a health
// and metrics port for the supervisor.
package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// Proxy is the load balancer's request handler, on fasthttp: Handle takes a
// request, forward follows it through its attempts (one backend each), and
// upgrade.go passes protocol switches through. What ReverseProxy would give
// for free (hop-by-hop removal, X-Forwarded-*, upgrades, flushing streams)
// is done here, in headers.go and body.go, and covered by tests.
type Proxy struct {
	cfg      *Config
	set      *backendSet // swapped whole when the set changes; see backends.go
	selector Selector
	metrics  *metrics
	log      zerolog.Logger
	access   *AccessLog // nil: access lines go through log
	onChange func(*Backend, Transition, error, string)
	trust    trust
	limits   *connLimiter // nil: no per-request client cap

	idPrefix string
	idSeq    atomic.Uint64

	bodies bodyBufs // buffers of replayable request bodies
}

// newProxy builds the handler. cfg must have defaults set.
func newProxy(cfg *Config, set *backendSet, m *metrics, logger zerolog.Logger, onChange func(*Backend, Transition, error, string)) *Proxy {
	var seed [4]byte
	_, _ = rand.Read(seed[:])
	p := &Proxy{
		cfg:      cfg,
		set:      set,
		selector: &RoundRobin{},
		metrics:  m,
		log:      logger,
		onChange: onChange,
		trust:    newTrust(cfg),
		idPrefix: hex.EncodeToString(seed[:]) + "-",
	}
	return p
}

// appendID appends a new request id: the process's prefix and a count.
func (p *Proxy) appendID(dst []byte) []byte {
	return strconv.AppendUint(append(dst, p.idPrefix...), p.idSeq.Add(1), 16)
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
	x.names = scanHeaderNames(h, p.trust.key)
	if x.names&hasRequestID != 0 {
		// A copy: the header's buffer is the server's.
		x.id = append(x.idBuf[:0], h.PeekCanonical([]byte(canonicalRequestID))...)
	}
	if len(x.id) == 0 {
		x.id, x.idOurs = p.appendID(x.idBuf[:0]), true
	}
	if !p.checkRequest(x) {
		return
	}
	if p.limits != nil && p.limits.forwarded(x.ctx.RemoteAddr()) {
		client, ok := p.limits.acquireForwarded(h)
		if !ok {
			p.refuse(x, fasthttp.StatusServiceUnavailable, "too many connections from this address")
			return
		}
		if client.IsValid() {
			defer p.limits.release(client, true, false)
		}
	}
	if h.ConnectionUpgrade() && len(h.Peek("Upgrade")) > 0 {
		if upgradeHasBody(h) {
			p.refuse(x, fasthttp.StatusBadRequest, "an upgrade request cannot carry a body")
			return
		}
		p.upgrade(x)
		return
	}
	p.forward(x)
}

// forward sends a request to backends until one answers or the retry rule
// says stop; each turn of the loop is one attempt.
func (p *Proxy) forward(x *exchange) {
	out := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(out)
	p.outbound(x, out, false)
	var a attempts
	if err := a.readBody(x, p.cfg.MaxReplayBody, p.cfg.BodyIdleTimeout); err != nil {
		p.clientFailed(x, err)
		return
	}
	if a.pooled != nil {
		// Every attempt has written it by the time forward returns; out,
		// which still points at it, is released unused after this.
		defer p.bodies.put(a.pooled)
	}
	set := p.set.load()
	for {
		b := p.pick(x, set, &a.tried)
		if b == nil {
			// The set may have been replaced since this request loaded
			// it, with every member of the old one drained since: look
			// at the current one before giving up.
			if cur := p.set.load(); !sameSet(cur, set) {
				set = cur
				continue
			}
			break
		}
		a.prepare(out, b)
		// pick has counted the request in b's in-flight number.
		stream, sent, err := b.conns.roundTrip(out, &x.ctx.Response, a.head, a.resendable, x.start)
		if err == nil {
			p.answered(x, b, stream)
			return
		}
		x.ctx.Response.Reset()
		if a.stream != nil && a.stream.err != nil {
			// The client's body broke off: the backend is not to blame.
			b.inFlight.Add(-1)
			p.clientFailed(x, a.stream.err)
			return
		}
		f := classify(err, sent)
		p.attemptFailed(b, err, !f.timeout && !f.hung)
		if !a.again(x, f, err) {
			return
		}
	}
	if a.reached {
		p.fail(x, fasthttp.StatusBadGateway, "every backend failed", a.lastErr)
		return
	}
	p.fail(x, fasthttp.StatusServiceUnavailable, "no backend available", a.lastErr)
}

// attempts is what forward's attempts share: the request body as it can be
// sent again, what the retry rule needs, and how the attempts went.
type attempts struct {
	kind       bodyKind
	body       []byte    // bodyBuffered
	pooled     *[]byte   // holds body when it is from Proxy.bodies
	stream     *onceBody // bodyStreamed
	length     int       // the client's Content-Length, -1 for chunked
	noHost     bool      // the client sent no Host: each backend's own
	head       bool
	hasKey     bool // an Idempotency-Key header
	resendable bool // may go to the same backend again after a dead pooled connection
	tried      Tried
	reached    bool // some attempt's request reached a backend
	lastErr    error
}

// readBody reads or streams the body (see readRequestBody) and settles what
// the retry rule needs to know before the first attempt.
func (a *attempts) readBody(x *exchange, maxReplay int64, idle time.Duration) *clientBodyError {
	in := &x.ctx.Request.Header
	var err *clientBodyError
	a.kind, a.body, a.stream, a.pooled, err = readRequestBody(x.ctx, maxReplay, idle, &x.p.bodies)
	if err != nil {
		return err
	}
	a.length = max(in.ContentLength(), -1)
	a.noHost = len(in.Host()) == 0
	a.head = in.IsHead()
	a.hasKey = x.names&hasIdempotencyKey != 0 && len(in.PeekCanonical([]byte(canonicalIdempotencyKey))) > 0
	// A request that may go to a second backend after it was sent may as
	// well go to the same one again when a pooled connection was dead.
	a.resendable = retryable(string(in.Method()), true, a.hasKey, a.kind, false)
	return nil
}

// prepare addresses out to b and attaches the body for this attempt.
func (a *attempts) prepare(out *fasthttp.Request, b *Backend) {
	if a.noHost {
		out.Header.SetHost(b.addr)
	}
	switch a.kind {
	case bodyBuffered:
		out.SetBodyRaw(a.body)
	case bodyStreamed:
		out.SetBodyStream(a.stream, a.length)
	}
}

// again decides, after a failed attempt, whether another may follow; when
// not, it has answered the client.
func (a *attempts) again(x *exchange, f failure, err error) bool {
	a.lastErr = err
	if f.sent {
		a.reached = true
	}
	if f.timeout {
		x.p.fail(x, fasthttp.StatusGatewayTimeout, "backend sent no response in time", err)
		return false
	}
	touched := a.stream != nil && a.stream.touched.Load()
	if f.hung && !retryable(string(x.ctx.Request.Header.Method()), true, a.hasKey, a.kind, touched) {
		x.p.fail(x, fasthttp.StatusGatewayTimeout, "backend stopped answering; not retried because it may have been processed", err)
		return false
	}
	if !retryable(string(x.ctx.Request.Header.Method()), f.sent, a.hasKey, a.kind, touched) {
		x.p.fail(x, fasthttp.StatusBadGateway, "backend failed after the request was sent; not retried because it may have been processed", err)
		return false
	}
	return true
}

// pick selects the next backend not yet tried and counts the attempt; nil
// when none is left. The selector has counted the request in the backend's
// in-flight number.
func (p *Proxy) pick(x *exchange, set []*Backend, tried *Tried) *Backend {
	b := p.selector.Select(set, *tried)
	if b == nil {
		return nil
	}
	*tried = tried.With(b)
	x.attempts++
	if x.attempts > 1 {
		p.metrics.retries.Inc()
	}
	x.backend = b
	b.requests.Add(1)
	return b
}

// sameSet reports whether two loads of the backend set are the same
// version: every replacement stores a new slice.
func sameSet(x, y []*Backend) bool {
	return len(x) == len(y) && (len(x) == 0 || &x[0] == &y[0])
}

// attemptFailed gives back the attempt's hold on b and records the failure.
// eject takes b out of rotation at once: when a backend dies, the first
// refused or broken connection keeps other requests off it. A slow answer
// is for the active checks to judge.
func (p *Proxy) attemptFailed(b *Backend, err error, eject bool) {
	b.inFlight.Add(-1)
	b.recordFailure(err)
	if !eject {
		return
	}
	if tr := b.Eject(err); tr != NoChange {
		p.metrics.ejections.WithLabelValues(b.addr).Inc()
		p.onChange(b, tr, err, "request")
	}
}

// answered takes b's response: the request now holds b until finish.
func (p *Proxy) answered(x *exchange, b *Backend, stream *upstreamBody) {
	b.recordSuccess()
	x.holding = b
	// One clock reading serves the check below and, for a buffered
	// response, the access line's duration.
	x.end = time.Now()
	// A client that left can only have done so while waiting; the check
	// costs a system call, so only slow answers get it.
	if x.end.Sub(x.start) >= p.cfg.ClientGoneCheckAfter && clientGone(x.ctx) {
		// Nobody to answer; the backend did its part.
		if stream != nil {
			stream.close()
		}
		x.status, x.errMsg = 499, "client went away"
		x.ctx.Response.Reset()
		x.ctx.SetConnectionClose()
		x.finish()
		return
	}
	p.respond(x, stream)
}

// failure is a classified upstream error.
type failure struct {
	sent    bool // request bytes reached the backend's socket
	dial    bool // no connection could be made
	timeout bool // no response header in time
	hung    bool // abandoned: the backend stopped answering (hung.go)
}

func classify(err error, sent bool) failure {
	var de *errDial
	switch {
	case errors.As(err, &de):
		return failure{dial: true}
	case errors.Is(err, errHeaderTimeout):
		return failure{sent: sent, timeout: true}
	case errors.Is(err, errHung):
		return failure{sent: true, hung: true}
	}
	return failure{sent: sent}
}
