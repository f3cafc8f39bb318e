package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

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
	for i, name := range hopByHop() {
		for _, k := range []string{name, strings.ToLower(name), strings.ToUpper(name)} {
			if got := hopByHopIndex([]byte(k)); got != i {
				t.Errorf("hopByHopIndex(%q) = %d, want %d", k, got, i)
			}
		}
	}
	if hopByHop()[connectionIndex] != "Connection" {
		t.Errorf("connectionIndex %d is %q", connectionIndex, hopByHop()[connectionIndex])
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
		{"Host: a\r\nConnection: keep-alive, X-Foo\r\nX-Foo: 1\r\n", hopName(0)},
		{"Host: a\r\nte: trailers\r\n", hopName(5)},
		{"Host: a\r\nProxy-Connection: keep-alive\r\nKEEP-ALIVE: timeout=5\r\n", hopName(1) | hopName(2)},
		{"Host: a\r\nexpect: 100-continue\r\nContent-Length: 0\r\n", hasExpect},
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
			t.Errorf("%q: flags %b, want %b", c.headers, got, c.want)
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
		if id := string(p.appendID(nil)); id == "" || plainPrefix(id) != len(id) || strings.ContainsAny(id, `"\`) {
			t.Fatalf("id %q needs escaping", id)
		}
	}
}

// TestHopByHopEachStripped: each hop-by-hop header a client sends, alone
// and in whatever case, stops at the balancer, with the headers Connection
// names; the others pass. The requests are written raw, as Go's client
// would rewrite some of these headers itself.
func TestHopByHopEachStripped(t *testing.T) {
	seen := make(chan http.Header, 1)
	be := testBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		io.WriteString(w, "{}")
	})
	lb, _ := startLB(t, Config{}, hostport(be))
	rc := &rawClient{addr: lb.Addr(), timeout: 10 * time.Second}
	defer rc.close()
	var resp rawResponse
	cases := []struct{ headers, gone string }{
		{"proxy-connection: keep-alive\r\n", "Proxy-Connection"},
		{"KEEP-ALIVE: timeout=5\r\n", "Keep-Alive"},
		{"Proxy-Authenticate: Basic\r\n", "Proxy-Authenticate"},
		{"proxy-authorization: Basic eDp5\r\n", "Proxy-Authorization"},
		{"TE: trailers\r\n", "Te"},
		{"trailer: X-Checksum\r\n", "Trailer"},
		{"Upgrade: h2c\r\n", "Upgrade"}, // no Connection: upgrade, so no switch
		{"connection: X-Drop\r\nX-Drop: 1\r\n", "X-Drop"},
		{"Connection: keep-alive\r\n", "Connection"},
	}
	for _, tc := range cases {
		req := "GET /x HTTP/1.1\r\nHost: lb\r\n" + tc.headers + "X-Kept: yes\r\n\r\n"
		if err := rc.do([]byte(req), &resp); err != nil {
			t.Fatalf("%q: %v", tc.headers, err)
		}
		if resp.status != 200 {
			t.Fatalf("%q: status %d", tc.headers, resp.status)
		}
		h := <-seen
		if _, ok := h[tc.gone]; ok {
			t.Errorf("%q: the backend saw %s: %v", tc.headers, tc.gone, h)
		}
		if h.Get("X-Kept") != "yes" {
			t.Errorf("%q: X-Kept lost: %v", tc.headers, h)
		}
	}
}

// TestRequestIDAnyCase: a request id sent under a lowercase name, raw (Go's
// client would fold it), is the one the backend and the client see.
func TestRequestIDAnyCase(t *testing.T) {
	seen := make(chan string, 1)
	be := testBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("X-Request-Id")
		io.WriteString(w, "{}")
	})
	lb, _ := startLB(t, Config{}, hostport(be))
	c, err := net.Dial("tcp", lb.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: lb\r\nx-request-id: lower-1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := <-seen; got != "lower-1" || resp.Header.Get("X-Request-Id") != "lower-1" {
		t.Fatalf("backend saw %q, client got %q", got, resp.Header.Get("X-Request-Id"))
	}
}
