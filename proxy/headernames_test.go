package proxy

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/posterctl/posterctl/fwdauth"
)

// TestIsTchar: the table holds exactly RFC 9110's token characters.
func TestIsTchar(t *testing.T) {
	for c := range 256 {
		b := byte(c)
		want := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
		if isTchar(b) != want {
			t.Fatalf("isTchar(%q) = %v", b, !want)
		}
	}
}

// TestIsHopByHop: every hop-by-hop name in any case, and no other name,
// whatever its length or first letter.
func TestIsHopByHop(t *testing.T) {
	for _, name := range hopByHop() {
		for _, k := range []string{name, strings.ToLower(name), strings.ToUpper(name)} {
			if !isHopByHop([]byte(k)) {
				t.Errorf("isHopByHop(%q) = false", k)
			}
		}
	}
	others := []string{"", "T", "Tx", "Ta", "Content-Type", "Connectiom", "Keep-Alivf", "Trailes", "Upgradf",
		"Proxy-Connectiom", "Transfer-Encodinh", "Proxy-Authenticatf", "Proxy-Authorizatiom", "X-Request-Id",
		"Content-Length", "Forwarded", "Expect", "Host", "Cookie"}
	// Each name with one letter changed, so a switch that matches on
	// length or first letter alone would say yes.
	for _, name := range hopByHop() {
		for i := range len(name) {
			b := []byte(name)
			b[i] ^= 0x01
			if !bytes.EqualFold(b, []byte(name)) {
				others = append(others, string(b))
			}
		}
	}
	for _, k := range others {
		if isHopByHop([]byte(k)) {
			t.Errorf("isHopByHop(%q) = true", k)
		}
	}
}

// TestScanHeaderNames: the flags say exactly which notable headers a
// request carries, whatever the case the client wrote their names in, and
// a flagged header is found under its canonical name, as the balancer
// then looks it up.
func TestScanHeaderNames(t *testing.T) {
	const secret = fwdauth.Header
	cases := []struct {
		headers string
		want    headerNames
	}{
		{"Host: a\r\nUser-Agent: b\r\nAccept: */*\r\n", 0},
		{"Host: a\r\nx-request-id: abc\r\n", hasRequestID},
		{"Host: a\r\nX-REQUEST-ID: abc\r\n", hasRequestID},
		{"Host: a\r\nidempotency-key: k1\r\nContent-Length: 0\r\n", hasIdempotencyKey},
		{"Host: a\r\nx-forwarded-for: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\nFORWARDED: for=1.2.3.4\r\n", hasForwardedFor | hasForwarded},
		{"Host: a\r\nx-posterctl-proxy-secret: forged\r\n", hasSecretHeader},
		{"Host: a\r\nConnection: keep-alive, X-Foo\r\nX-Foo: 1\r\n", hasHopByHopName},
		{"Host: a\r\nte: trailers\r\n", hasHopByHopName},
		{"Host: a\r\nProxy-Connection: keep-alive\r\n", hasHopByHopName},
		{"Host: a\r\nexpect: 100-continue\r\nContent-Length: 0\r\n", hasHopByHopName},
		{"Host: a\r\nX-Forwarded-Proto: https\r\nX-Request-Idx: no\r\nForwarded-For: no\r\n", 0},
	}
	for _, c := range cases {
		var req fasthttp.Request
		raw := "GET / HTTP/1.1\r\n" + c.headers + "\r\n"
		if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		h := &req.Header
		got := scanHeaderNames(h, []byte(secret))
		if got != c.want {
			t.Errorf("%q: flags %07b, want %07b", c.headers, got, c.want)
		}
		// What the flags promise, a lookup by the folded name finds.
		if found := len(h.PeekCanonical([]byte(canonicalRequestID))) > 0; found != (got&hasRequestID != 0) {
			t.Errorf("%q: X-Request-Id found %v", c.headers, found)
		}
		if found := len(h.PeekCanonical([]byte(canonicalIdempotencyKey))) > 0; found != (got&hasIdempotencyKey != 0) {
			t.Errorf("%q: Idempotency-Key found %v", c.headers, found)
		}
		for flag, name := range map[headerNames]string{hasForwardedFor: "X-Forwarded-For", hasForwarded: "Forwarded", hasSecretHeader: secret} {
			if found := len(h.PeekAll(name)) > 0; found != (got&flag != 0) {
				t.Errorf("%q: %s found %v", c.headers, name, found)
			}
		}
	}
	checked := 0
	for _, bad := range []string{"Content Length: 3\r\n", "X-Ok: 1\r\nBad@Name: 2\r\n", "NoColon\r\n", "X-Ok: 1\r\nBad Name: 2\r\n"} {
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\n" + bad + "\r\n"))); err != nil {
			continue // the parser refused it itself
		}
		checked++
		if scanHeaderNames(&req.Header, []byte(secret))&namesInvalid == 0 {
			t.Errorf("%q: taken as valid", bad)
		}
	}
	if checked == 0 {
		t.Fatal("the parser refused every bad name: nothing left to check")
	}
}

// TestNewIDPlain: the balancer's own request ids need no JSON escaping,
// which the access line counts on (accessLine.idPlain).
func TestNewIDPlain(t *testing.T) {
	p := newProxy(&Config{}, nil, nil, zerolog.Nop(), nil)
	for range 1000 {
		if id := p.newID(); id == "" || plainPrefix(id) != len(id) || strings.ContainsAny(id, `"\`) {
			t.Fatalf("id %q needs escaping", id)
		}
	}
}
