package proxy

import (
	"encoding/json"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/posterctl/posterctl/proxy/internal/sockio"
)

// exchange follows one client request through its attempts and, for a
// streamed response, to the end of the response. With an access log, it
// outlives the request: it waits in the log until its line is formatted
// (AccessLog.hold), so exchanges are not reused.
//
// Every request allocates one, and its 208 bytes fill a size class of Go's
// allocator: a field more moves every request to a larger class (with 128
// bytes more, callgrind counted 2% more instructions per request, nearly
// all in garbage collection), which is why the access log's copies of the
// request's method and path are kept in the LogWriter, not here.
type exchange struct {
	p        *Proxy
	ctx      *fasthttp.RequestCtx
	start    time.Time
	end      time.Time // when known before finish, saving a clock reading
	id       []byte    // in idBuf unless longer
	idBuf    [48]byte
	idOurs   bool        // id is appendID's, which needs no escaping
	names    headerNames // what the client's header section holds
	backend  *Backend    // of the last attempt, for the access line
	holding  *Backend    // whose in-flight count this request holds
	attempts int
	status   int
	errMsg   string
	finished bool

	stream *upstreamBody // a streamed response body
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
	resp.Header.SetCanonical([]byte(canonicalRequestID), x.id)
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
	// The line is gathered only when it will be written: with the log
	// below info, this is every request's path.
	if a := p.access; a != nil {
		if p.log.GetLevel() > zerolog.InfoLevel || zerolog.GlobalLevel() > zerolog.InfoLevel {
			return
		}
		a.hold(x, end)
		return
	}
	if ev := p.log.Info(); ev != nil {
		line := x.line(x.ctx.Method(), x.ctx.Path(), x.status, x.errMsg, d)
		line.remote = x.ctx.RemoteAddr()
		logAccess(ev, &line)
	}
}

// line is x's access line, for a request method path answered with
// status and errMsg after d.
func (x *exchange) line(method, path []byte, status int, errMsg string, d time.Duration) accessLine {
	l := accessLine{errMsg: errMsg, method: method, path: path, status: status, backend: "none", attempts: x.attempts,
		d: d, id: x.id, idPlain: x.idOurs}
	if x.backend != nil {
		l.backend, l.backendField, l.okField = x.backend.addr, x.backend.accessField, x.backend.accessOK
	}
	return l
}

// accessLine is what an access line tells of a request.
type accessLine struct {
	errMsg       string
	method, path []byte
	status       int
	backend      string
	attempts     int
	d            time.Duration
	id           []byte
	remote       net.Addr // for logAccess; AccessLog's lines come with their remote field formatted

	// What spares AccessLog formatting what it has formatted before: the
	// backend's field (backendField), the same with a status of 200 ahead
	// (okField), and whether id is the balancer's own, which needs no
	// escaping.
	backendField []byte
	okField      []byte
	idPlain      bool
}

// logAccess writes one access line; ev is nil when the level is off.
func logAccess(ev *zerolog.Event, l *accessLine) {
	if ev == nil {
		return
	}
	if l.errMsg != "" {
		ev = ev.Str("error", l.errMsg)
	}
	var rb [64]byte
	var ms [24]byte
	ev.Bytes("method", l.method).Bytes("path", l.path).Int("status", l.status).
		Str("backend", l.backend).Int("attempts", l.attempts).RawJSON("duration_ms", appendMillis(ms[:0], l.d)).
		Bytes("request_id", l.id).Bytes("remote", appendAddr(rb[:0], l.remote)).Msg("request")
}

// appendMillis appends d as putMillis writes it: zerolog's Dur goes through
// a general float formatter, a good part of the access line's cost.
func appendMillis(dst []byte, d time.Duration) []byte {
	dst = slices.Grow(dst, maxMillisLen)
	return dst[:len(dst)+putMillis(dst[len(dst):len(dst)+maxMillisLen], d)]
}

// maxMillisLen is the longest duration putMillis writes: 20 digits of
// milliseconds and four characters of fraction.
const maxMillisLen = 24

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
	resp.Header.SetCanonical([]byte(canonicalRequestID), x.id)
	if status == fasthttp.StatusServiceUnavailable {
		resp.Header.Set("Retry-After", strconv.Itoa(int((p.cfg.RetryAfter+time.Second-1)/time.Second)))
	}
	body, _ := json.Marshal(errorBody{Error: msg, RequestID: string(x.id)})
	resp.SetBodyRaw(append(body, '\n'))
	x.finish()
}

// clientGone peeks, without blocking or consuming, at the client's
// connection: an end of stream there means the client left while its
// request was at the backend.
func clientGone(ctx *fasthttp.RequestCtx) bool {
	return sockio.PeekConn(ctx.Conn()) == sockio.PeekClosed
}
