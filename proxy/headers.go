package proxy

import (
	"bytes"
	"net"

	"github.com/valyala/fasthttp"
)

// outbound builds the request headers a backend gets, the one place they
// are built: the client's headers without hop-by-hop ones, with
// X-Forwarded-*, Forwarded and X-Request-Id. An upgrade keeps
// Connection: Upgrade and Upgrade, and is always scrubbed; a plain request
// rarely carries anything to remove, and is scanned first.
func (p *Proxy) outbound(x *exchange, out *fasthttp.Request, upgrade bool) {
	in := &x.ctx.Request.Header
	in.CopyTo(&out.Header)
	switch {
	case upgrade:
		stripRequestHopByHop(&out.Header, true, hopByHopNames)
	case x.names&hopByHopNames != 0:
		stripRequestHopByHop(&out.Header, false, x.names)
		if x.names&hasExpect != 0 {
			out.Header.Del("Expect") // the server has already answered 100-continue
		}
	default:
		out.Header.ResetConnectionClose()
	}
	out.Header.SetNoDefaultContentType(true)
	var scratch [256]byte
	remote := x.ctx.RemoteAddr()
	setForwarded(&out.Header, in, x.names, remote, p.trust.proto(in, remote), scratch[:0])
	out.Header.SetCanonical([]byte(canonicalRequestID), x.id)
	p.trust.setSecret(&out.Header, x.names&hasSecretHeader != 0)
}

// hopByHop lists the headers that concern one connection only (RFC 9110
// 7.6.1) and never cross the proxy; returned by value, so nobody can change
// it. hopByHopIndex finds a name in it.
func hopByHop() [nHopByHop]string {
	return [...]string{
		"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	}
}

const (
	nHopByHop       = 9
	connectionIndex = 0 // Connection's place in hopByHop
)

// connectionTokens returns the header names listed in Connection headers,
// which are hop-by-hop too: a client may name any header there.
func connectionTokens(values [][]byte, dst [][]byte) [][]byte {
	for _, v := range values {
		for len(v) > 0 {
			var tok []byte
			if i := bytes.IndexByte(v, ','); i >= 0 {
				tok, v = v[:i], v[i+1:]
			} else {
				tok, v = v, nil
			}
			tok = bytes.TrimSpace(tok)
			if len(tok) > 0 {
				dst = append(dst, tok)
			}
		}
	}
	return dst
}

// stripRequestHopByHop removes hop-by-hop headers from an outgoing request,
// of those sent (present, see scanHeaderNames) and those Connection names;
// keepUpgrade keeps Connection: Upgrade and Upgrade for a protocol switch.
func stripRequestHopByHop(h *fasthttp.RequestHeader, keepUpgrade bool, present headerNames) {
	if present&hopName(connectionIndex) != 0 {
		var named [8][]byte
		for _, tok := range connectionTokens(h.PeekAll("Connection"), named[:0]) {
			if keepUpgrade && bytes.EqualFold(tok, []byte("Upgrade")) {
				continue
			}
			h.DelBytes(tok)
		}
	}
	for i, k := range hopByHop() {
		if present&hopName(i) == 0 || keepUpgrade && k == "Upgrade" {
			continue
		}
		h.Del(k)
	}
	h.ResetConnectionClose()
	if keepUpgrade {
		h.Set("Connection", "Upgrade")
	}
}

// stripResponseHopByHop does the same for a backend's response.
func stripResponseHopByHop(h *fasthttp.ResponseHeader) {
	var named [8][]byte
	for _, tok := range connectionTokens(h.PeekAll("Connection"), named[:0]) {
		h.DelBytes(tok)
	}
	for _, k := range hopByHop() {
		if k != "Transfer-Encoding" { // fasthttp keeps framing to itself
			h.Del(k)
		}
	}
}

// setForwarded sets X-Forwarded-For (the client's list with the direct peer
// appended, so the last entry is always the one this balancer saw),
// X-Forwarded-Host, X-Forwarded-Proto (proto, see trust.proto) and an RFC 7239
// Forwarded element (appended to earlier ones). buf is scratch space,
// returned for reuse.
//
// The names set are given in canonical form (SetCanonical, which SetBytesV
// calls after copying and normalizing the name): this runs for every
// request.
func setForwarded(out, in *fasthttp.RequestHeader, names headerNames, remote net.Addr, proto string, buf []byte) []byte {
	var ipBuf [64]byte
	ip := ipBuf[:0]
	v6 := false
	if a := peerAddr(remote); a.IsValid() {
		ip = a.AppendTo(ip)
		v6 = a.Is6()
	}
	host := in.Host()

	buf = buf[:0]
	if names&hasForwardedFor != 0 {
		for i, v := range in.PeekAll("X-Forwarded-For") {
			if i > 0 {
				buf = append(buf, ", "...)
			}
			buf = append(buf, v...)
		}
	}
	if len(buf) > 0 {
		buf = append(buf, ", "...)
	}
	buf = append(buf, ip...)
	out.SetCanonical([]byte("X-Forwarded-For"), buf)
	out.SetCanonical([]byte("X-Forwarded-Host"), host)
	out.SetCanonical([]byte("X-Forwarded-Proto"), []byte(proto)) // "http" or "https"

	buf = buf[:0]
	if names&hasForwarded != 0 {
		for _, v := range in.PeekAll("Forwarded") {
			buf = append(buf, v...)
			buf = append(buf, ", "...)
		}
	}
	buf = append(buf, "for="...)
	if v6 {
		buf = append(buf, `"[`...)
		buf = append(buf, ip...)
		buf = append(buf, `]"`...)
	} else {
		buf = append(buf, ip...)
	}
	if len(host) > 0 {
		buf = append(buf, ";host="...)
		buf = appendQuoted(buf, host)
	}
	buf = append(buf, ";proto="...)
	buf = append(buf, proto...)
	out.SetCanonical([]byte("Forwarded"), buf)
	return buf
}

// appendQuoted appends s as an RFC 7230 quoted-string.
func appendQuoted(dst, s []byte) []byte {
	dst = append(dst, '"')
	for _, c := range s {
		if c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return append(dst, '"')
}

// hasHopByHopResponse reports whether a backend's response carries any
// header stripResponseHopByHop would remove (but Transfer-Encoding, which
// fasthttp keeps to itself). Most carry none, and one pass over the headers
// is far cheaper than a lookup per name.
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

// isHopByHop reports whether k names one of hopByHop's headers, in any
// case.
func isHopByHop(k []byte) bool { return hopByHopIndex(k) >= 0 }

// hopByHopIndex is the place in hopByHop of the header k names, in any
// case, or -1. It runs for every header of every request and response, so
// the name's length and first letter pick the one name to compare.
func hopByHopIndex(k []byte) int {
	var (
		i    int
		name string
	)
	switch len(k) {
	case len("Te"):
		i, name = 5, "Te"
	case len("Trailer"): // and Upgrade
		i, name = 8, "Upgrade"
		if k[0]|0x20 == 't' {
			i, name = 6, "Trailer"
		}
	case len("Connection"): // and Keep-Alive
		i, name = 2, "Keep-Alive"
		if k[0]|0x20 == 'c' {
			i, name = 0, "Connection"
		}
	case len("Proxy-Connection"):
		i, name = 1, "Proxy-Connection"
	case len("Transfer-Encoding"):
		i, name = 7, "Transfer-Encoding"
	case len("Proxy-Authenticate"):
		i, name = 3, "Proxy-Authenticate"
	case len("Proxy-Authorization"):
		i, name = 4, "Proxy-Authorization"
	default:
		return -1
	}
	if !bytes.EqualFold(k, []byte(name)) {
		return -1
	}
	return i
}
