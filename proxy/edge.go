package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"

	"github.com/valyala/fasthttp"
)

// checkRequest refuses what must never reach a backend and brings an
// absolute-form target to origin form; false means it has answered. Header
// names that are not tokens (RFC 9110 5.1) are refused rather than passed
// on: a backend or a cache that reads "Content Length" otherwise than the
// balancer did is how requests get smuggled.
func (p *Proxy) checkRequest(x *exchange) bool {
	h := &x.ctx.Request.Header
	if x.names&namesInvalid != 0 {
		p.refuse(x, fasthttp.StatusBadRequest, "a header name is not a valid token")
		return false
	}
	if uri := h.RequestURI(); len(uri) > 0 && uri[0] != '/' && !(len(uri) == 1 && uri[0] == '*') {
		if msg := toOriginForm(h, uri); msg != "" {
			p.refuse(x, fasthttp.StatusBadRequest, msg)
			return false
		}
	}
	return true
}

// refuse answers the proxy's JSON error and closes the connection: what
// follows a refused request on the wire cannot be trusted to be the next one.
func (p *Proxy) refuse(x *exchange, status int, msg string) {
	p.fail(x, status, msg, nil)
	x.ctx.SetConnectionClose()
}

// upgradeHasBody: a protocol switch carries no body; one with a declared
// body would leave the backend waiting for bytes that the tunnel never
// frames (RFC 9110 7.8 says nothing of a body, and no client sends one).
// fasthttp reports chunked as -1 and no length on a GET as -2.
func upgradeHasBody(h *fasthttp.RequestHeader) bool {
	n := h.ContentLength()
	return n > 0 || n == -1
}

// toOriginForm rewrites an absolute-form target (RFC 9112 3.2.2), which a
// client sends to a proxy, to the origin form a server expects, with Host
// taken from the target as that section requires. It returns why it cannot.
// The rest of the target is kept byte for byte: no decoding, no cleaning.
func toOriginForm(h *fasthttp.RequestHeader, uri []byte) string {
	i := bytes.Index(uri, []byte("://"))
	if i < 0 {
		return "request target is neither a path nor an absolute http URI"
	}
	scheme := uri[:i]
	if !bytes.EqualFold(scheme, []byte("http")) && !bytes.EqualFold(scheme, []byte("https")) {
		return "request target has a scheme other than http or https"
	}
	rest := uri[i+3:]
	end := bytes.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority := rest[:end]
	if len(authority) == 0 || bytes.IndexByte(authority, '@') >= 0 {
		return "request target has no host, or carries user information"
	}
	path := rest[end:]
	if k := bytes.IndexByte(path, '#'); k >= 0 {
		path = path[:k]
	}
	var buf [256]byte
	origin := buf[:0]
	if len(path) == 0 || path[0] != '/' {
		origin = append(origin, '/')
	}
	origin = append(origin, path...)
	// SetHostBytes copies; the target's bytes are h's own and change with it.
	host := append([]byte(nil), authority...)
	h.SetRequestURIBytes(origin)
	h.SetHostBytes(host)
	return ""
}

// serverReadError is the server's answer to a request it could not read (a header
// or the start of a body too slow, too large or malformed): the proxy's JSON
// error, as everywhere else. The server closes the connection after it.
func serverReadError(ctx *fasthttp.RequestCtx, err error) {
	status, msg := fasthttp.StatusBadRequest, "malformed request"
	var ne net.Error
	if _, ok := err.(*fasthttp.ErrSmallBuffer); ok {
		status, msg = fasthttp.StatusRequestHeaderFieldsTooLarge, "request header too large"
	} else if errors.As(err, &ne) && ne.Timeout() {
		status, msg = fasthttp.StatusRequestTimeout, "request not received in time"
	}
	resp := &ctx.Response
	resp.Reset()
	resp.SetStatusCode(status)
	resp.Header.SetContentType("application/json")
	resp.Header.Set("Cache-Control", "no-store")
	body, _ := json.Marshal(errorBody{Error: msg})
	resp.SetBodyRaw(append(body, '\n'))
}

// clientFailed answers a request whose body the client did not deliver:
// 408 when it stalled, 400 when it broke off. Nothing of it counts against
// the backend, and the connection closes, its framing lost.
func (p *Proxy) clientFailed(x *exchange, err *clientBodyError) {
	status, msg := fasthttp.StatusBadRequest, "request body broke off"
	if err.stalled() {
		status, msg = fasthttp.StatusRequestTimeout, "request body stalled: no byte for "+p.cfg.BodyIdleTimeout.String()
	}
	p.fail(x, status, msg, err)
	x.ctx.SetConnectionClose()
}

// maxInterim bounds the 1xx responses taken before a final one, as
// fasthttp's own client does.
const maxInterim = 100

// readFinalHeader reads a backend's response header, passing over interim
// (1xx) responses, which precede the real answer on the same connection:
// stopping at one would leave the final response unread, for the next
// request on the connection to take (TRAPS.md). 100 Continue means nothing
// here (the balancer sends the whole body). 103 Early Hints is dropped too:
// browsers act on it only over HTTP/2 and later, an HTTP/1.0 client must
// never get a 1xx, and the hints are optional by definition (RFC 8297), so
// relaying them, outside the server's one response write, buys nothing. A
// 101 is final for an upgrade; to a request that asked for none, it leaves
// the connection in an unknown protocol: an error, and the caller closes it.
func readFinalHeader(h *fasthttp.ResponseHeader, br *bufio.Reader, upgrade bool) error {
	for range maxInterim + 1 {
		if err := h.Read(br); err != nil {
			return readError(err)
		}
		switch st := h.StatusCode(); {
		case st >= 200, upgrade && st == fasthttp.StatusSwitchingProtocols:
			return nil
		case st == fasthttp.StatusSwitchingProtocols:
			return errors.New("read response: 101 Switching Protocols to a request that asked for no upgrade")
		}
	}
	return fmt.Errorf("read response: more than %d interim (1xx) responses", maxInterim)
}
