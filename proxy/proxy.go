package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Proxy is the load balancer's HTTP handler. httputil.ReverseProxy does the
// forwarding (header rules, upgrades, flushing); its Transport is retryTransport,
// which picks the backend for each attempt, so a retry never re-enters the
// handler and never loses the per-request set of backends already tried.
type Proxy struct {
	cfg      *Config
	pool     []*Backend
	selector Selector
	rp       *httputil.ReverseProxy
	upstream *http.Transport
	metrics  *metrics
	log      zerolog.Logger
	onChange func(*Backend, Transition, error, string)

	idPrefix string
	idSeq    atomic.Uint64
}

type stateKey struct{}

// reqState follows one client request through its attempts.
type reqState struct {
	start    time.Time
	id       string
	backend  *Backend // of the last attempt, for the access line
	holding  *Backend // whose in-flight count this request holds
	attempts int
	status   int
	errMsg   string

	body   bodyKind
	buf    []byte
	stream *onceBody
	hasKey bool
}

// NewProxy builds the handler. cfg must have defaults set.
func NewProxy(cfg *Config, pool []*Backend, m *metrics, logger zerolog.Logger, onChange func(*Backend, Transition, error, string)) *Proxy {
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
		upstream: &http.Transport{
			Proxy: nil, // never route backend traffic through an environment proxy
			DialContext: (&net.Dialer{
				Timeout:   cfg.DialTimeout,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			MaxIdleConns:          0, // no global cap; the per-host cap below rules
			MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
			IdleConnTimeout:       cfg.IdleConnTimeout,
			ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
			ExpectContinueTimeout: time.Second,
			// The client decides the encoding; the proxy must not add gzip
			// and silently decompress.
			DisableCompression: true,
		},
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      retryTransport{p},
		FlushInterval:  -1, // stream as it comes: server-sent events, long polls
		BufferPool:     newBufferPool(256, 32<<10),
		ErrorLog:       newStdLogger(logger),
		ErrorHandler:   p.errorHandler,
		ModifyResponse: p.modifyResponse,
	}
	return p
}

// Close drops idle backend connections.
func (p *Proxy) Close() { p.upstream.CloseIdleConnections() }

func (p *Proxy) newID() string {
	var b [32]byte
	out := append(b[:0], p.idPrefix...)
	out = strconv.AppendUint(out, p.idSeq.Add(1), 16)
	return string(out)
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &reqState{start: time.Now()}
	p.metrics.inFlight.Inc()
	defer func() {
		// Runs also when ReverseProxy aborts the response with a panic.
		if st.holding != nil {
			st.holding.inFlight.Add(-1)
		}
		p.metrics.inFlight.Dec()
		p.finish(r, st)
	}()

	st.id = r.Header.Get("X-Request-Id")
	if st.id == "" {
		st.id = p.newID()
		r.Header.Set("X-Request-Id", st.id)
	}
	st.hasKey = r.Header.Get("Idempotency-Key") != ""

	kind, buf, stream, err := prepareBody(r, p.cfg.MaxReplayBody)
	if err != nil {
		if r.Context().Err() != nil {
			st.status, st.errMsg = 499, "client went away"
			return
		}
		p.writeError(w, st, http.StatusBadRequest, "could not read request body")
		return
	}
	st.body, st.buf, st.stream = kind, buf, stream
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
}

// finish writes the access line and the request metrics.
func (p *Proxy) finish(r *http.Request, st *reqState) {
	d := time.Since(st.start)
	addr := "none"
	if st.backend != nil {
		addr = st.backend.addr
	}
	status := st.status
	if status == 0 {
		status = 502 // aborted mid-response by ReverseProxy
	}
	p.metrics.observe(addr, status, d)
	ev := p.log.Info()
	if st.errMsg != "" {
		ev = ev.Str("error", st.errMsg)
	}
	ev.Str("method", r.Method).Str("path", r.URL.Path).Int("status", status).
		Str("backend", addr).Int("attempts", st.attempts).Dur("duration", d).
		Str("request_id", st.id).Str("remote", r.RemoteAddr).Msg("request")
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "backend.invalid" // each attempt sets its backend
	// Appended to, not replaced: earlier proxies' entries stay (SetXForwarded
	// alone would start the list afresh).
	if prior, ok := pr.In.Header["X-Forwarded-For"]; ok {
		pr.Out.Header["X-Forwarded-For"] = prior
	}
	pr.SetXForwarded()
	pr.Out.Header["Forwarded"] = []string{forwarded(pr.In)}
}

// forwarded returns the RFC 7239 Forwarded value for r, appended to what
// earlier proxies sent.
func forwarded(r *http.Request) string {
	var sb strings.Builder
	for _, v := range r.Header["Forwarded"] {
		sb.WriteString(v)
		sb.WriteString(", ")
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	sb.WriteString("for=")
	if strings.Contains(ip, ":") {
		// IPv6 nodes are bracketed, and the brackets need a quoted-string.
		sb.WriteString(`"[` + ip + `]"`)
	} else {
		sb.WriteString(ip)
	}
	if r.Host != "" {
		sb.WriteString(";host=")
		sb.WriteString(strconv.Quote(r.Host))
	}
	sb.WriteString(";proto=http")
	return sb.String()
}

func (p *Proxy) modifyResponse(resp *http.Response) error {
	st, _ := resp.Request.Context().Value(stateKey{}).(*reqState)
	if st != nil {
		st.status = resp.StatusCode
		// Set, not added, in case the backend echoes the id itself.
		resp.Header["X-Request-Id"] = []string{st.id}
	}
	return nil
}

// proxyError is the final outcome of a request no backend answered.
type proxyError struct {
	status int
	msg    string
	cause  error
}

func (e *proxyError) Error() string { return e.msg }
func (e *proxyError) Unwrap() error { return e.cause }

var errClientGone = errors.New("client went away")

func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(stateKey{}).(*reqState)
	if st == nil {
		st = &reqState{}
	}
	var pe *proxyError
	switch {
	case errors.As(err, &pe):
		st.errMsg = pe.msg
		if pe.cause != nil {
			st.errMsg = pe.msg + ": " + pe.cause.Error()
		}
		p.writeError(w, st, pe.status, pe.msg)
	case errors.Is(err, errClientGone) || r.Context().Err() != nil:
		st.status, st.errMsg = 499, "client went away"
	default:
		st.errMsg = err.Error()
		p.writeError(w, st, http.StatusBadGateway, "bad gateway")
	}
}

type errorBody struct {
	Error     string `json:"error"`
	RequestID string `json:"request_id,omitempty"`
}

func (p *Proxy) writeError(w http.ResponseWriter, st *reqState, status int, msg string) {
	st.status = status
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Request-Id", st.id)
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", strconv.Itoa(int((p.cfg.RetryAfter+time.Second-1)/time.Second)))
	}
	body, _ := json.Marshal(errorBody{Error: msg, RequestID: st.id})
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// retryTransport runs the attempts of one request: each goes to a backend not
// tried yet, and a failed one is retried only when retryable allows it.
type retryTransport struct{ p *Proxy }

// attempt records what the transport did with one try, through httptrace.
type attempt struct {
	wrote atomic.Bool
	trace httptrace.ClientTrace
}

func newAttempt() *attempt {
	a := &attempt{}
	a.trace.WroteHeaders = func() { a.wrote.Store(true) }
	return a
}

func (t retryTransport) RoundTrip(out *http.Request) (*http.Response, error) {
	p := t.p
	st, _ := out.Context().Value(stateKey{}).(*reqState)
	if st == nil {
		return nil, errors.New("proxy: request without state")
	}
	var tried Tried
	reached := false
	var lastErr error
	for {
		b := p.selector.Select(p.pool, tried)
		if b == nil {
			break
		}
		tried = tried.With(b)
		st.attempts++
		if st.attempts > 1 {
			p.metrics.retries.Inc()
		}
		st.backend = b
		b.requests.Add(1)

		a := newAttempt()
		req := out.WithContext(httptrace.WithClientTrace(out.Context(), &a.trace))
		u := *out.URL
		u.Host = b.addr
		req.URL = &u
		switch st.body {
		case bodyBuffered:
			buf := st.buf
			req.Body = io.NopCloser(bytes.NewReader(buf))
			req.ContentLength = int64(len(buf))
			req.TransferEncoding = nil
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
		case bodyStreamed:
			req.Body = st.stream
		}

		b.inFlight.Add(1)
		resp, err := p.upstream.RoundTrip(req)
		if err == nil {
			b.recordSuccess()
			st.holding = b // released when ServeHTTP has copied the response
			return resp, nil
		}
		b.inFlight.Add(-1)
		lastErr = err

		f := classify(out.Context(), err, a.wrote.Load())
		if f.clientGone {
			return nil, errClientGone // not the backend's failure
		}
		if f.sent {
			reached = true
		}
		b.recordFailure(err)
		// A refused or broken connection ejects at once: when a backend dies,
		// the first failure stops other requests from picking its pooled
		// connections, which are dead too. (A healthy backend closing one
		// idle connection just as it is reused costs it two probes, 500 ms;
		// IdleConnTimeout below the backend's keeps that rare.) A slow answer
		// is for the active checks to judge.
		if !f.timeout {
			if tr := b.Eject(err); tr != NoChange {
				p.metrics.ejections.WithLabelValues(b.addr).Inc()
				p.onChange(b, tr, err, "request")
			}
		}
		if f.timeout {
			return nil, &proxyError{status: http.StatusGatewayTimeout, msg: "backend sent no response in time", cause: err}
		}
		touched := st.stream != nil && st.stream.touched.Load()
		if !retryable(out.Method, f.sent, st.hasKey, st.body, touched) {
			return nil, &proxyError{status: http.StatusBadGateway, msg: "backend failed after the request was sent; not retried because it may have been processed", cause: err}
		}
	}
	if reached {
		return nil, &proxyError{status: http.StatusBadGateway, msg: "every backend failed", cause: lastErr}
	}
	return nil, &proxyError{status: http.StatusServiceUnavailable, msg: "no backend available", cause: lastErr}
}

// newStdLogger lets net/http's own messages go through zerolog.
func newStdLogger(l zerolog.Logger) *log.Logger {
	return log.New(zerologWriter{l}, "", 0)
}

type zerologWriter struct{ log zerolog.Logger }

func (z zerologWriter) Write(b []byte) (int, error) {
	z.log.Warn().Msg(strings.TrimSpace(string(b)))
	return len(b), nil
}
