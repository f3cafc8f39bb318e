package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// headerNames is what one pass over the names of a request's raw header
// section finds: whether every name is a token, and which of the headers
// the balancer acts on the client sent. A lookup by name copies and
// case-folds the name first, a good part of a request's cost when done for
// a handful of headers that are usually absent; so each is looked up only
// when the pass saw it.
type headerNames uint32

const (
	namesInvalid      headerNames = 1 << iota // a name that is not a token
	hasRequestID                              // X-Request-Id
	hasIdempotencyKey                         // Idempotency-Key
	hasForwardedFor                           // X-Forwarded-For
	hasForwarded                              // Forwarded
	hasSecretHeader                           // the proxy secret's header (fwdauth)
	hasExpect                                 // Expect

	// One flag per hop-by-hop header, hopByHop's i-th at firstHopName<<i,
	// so that only those sent are removed: a removal by name costs as
	// much as a lookup.
	firstHopName
	hopByHopNames = (firstHopName<<nHopByHop - firstHopName) | hasExpect
)

// hopName is the flag of hopByHop's i-th header.
func hopName(i int) headerNames { return firstHopName << i }

// The canonical forms the server's parser gives these names, which
// PeekCanonical matches without folding them again.
const (
	canonicalRequestID      = "X-Request-Id"
	canonicalIdempotencyKey = "Idempotency-Key"
)

// scanHeaderNames reads the raw header section, names as the client sent
// them: it sees the names the parser keeps to itself (Host,
// Content-Length) exactly as they came, and formats nothing (visiting the
// parsed headers formats cookies). secretKey is the proxy secret's header.
//
// Header names that are not tokens (RFC 9110 5.1) make the request one to
// refuse: a backend or a cache that reads "Content Length" otherwise than
// the balancer did is how requests get smuggled. Every other line is a
// header the parser kept under its name, folded to canonical case, so the
// flags say exactly which of those names a lookup would find.
func scanHeaderNames(h *fasthttp.RequestHeader, secretKey []byte) headerNames {
	var found headerNames
	raw := h.RawHeaders()
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 || !isToken(line[:colon]) {
			return found | namesInvalid
		}
		found |= notableName(line[:colon], secretKey)
	}
	return found
}

// notableName is the flag for one header name, in any case; 0 for a name
// the balancer does not act on.
func notableName(k, secretKey []byte) headerNames {
	if len(k) == len(secretKey) && bytes.EqualFold(k, secretKey) {
		return hasSecretHeader
	}
	if i := hopByHopIndex(k); i >= 0 {
		return hopName(i)
	}
	switch {
	case len(k) == len("Expect") && bytes.EqualFold(k, []byte("Expect")):
		return hasExpect
	case len(k) == len("X-Request-Id") && bytes.EqualFold(k, []byte(canonicalRequestID)):
		return hasRequestID
	case len(k) == len("Idempotency-Key") && bytes.EqualFold(k, []byte(canonicalIdempotencyKey)):
		return hasIdempotencyKey
	case len(k) == len("X-Forwarded-For") && bytes.EqualFold(k, []byte("X-Forwarded-For")):
		return hasForwardedFor
	case len(k) == len("Forwarded") && bytes.EqualFold(k, []byte("Forwarded")):
		return hasForwarded
	}
	return 0
}

func isToken(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if !isTchar(c) {
			return false
		}
	}
	return true
}

// isTchar: RFC 9110 5.6.2.
func isTchar(c byte) bool { return tchars[c] == 't' }

// tchars marks with 't' the bytes of a token (RFC 9110 5.6.2): letters,
// digits and !#$%&'*+-.^_`|~.
const tchars = "" +
	"................................" + // control characters
	".t.ttttt..tt.tt.tttttttttt......" + // space to '?'
	".tttttttttttttttttttttttttt...tt" + // '@' to '_'
	"ttttttttttttttttttttttttttt.t.t." + // '`' to DEL
	"................................................................" +
	"................................................................"
