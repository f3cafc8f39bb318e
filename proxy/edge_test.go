package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawExchange writes req on a fresh connection to the balancer and reads
// one response.
func rawExchange(t *testing.T, lb *Server, req string) (*http.Response, string) {
	t.Helper()
	conn := dialLB(t, lb)
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestRefusedRequests: what must not reach a backend gets a 400 JSON error
// and a closed connection, and the backend sees nothing.
func TestRefusedRequests(t *testing.T) {
	var seen atomic.Int64
	be := testBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "reached")
	})
	lb, _ := startLB(t, Config{HealthInterval: time.Hour}, hostport(be))
	for _, tc := range []struct{ name, req string }{
		{"SpaceInHeaderName", "POST / HTTP/1.1\r\nHost: x\r\nContent Length: 47\r\nContent-Length: 0\r\n\r\n"},
		{"SpaceBeforeColon", "GET / HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n"},
		{"ParenInHeaderName", "GET / HTTP/1.1\r\nHost: x\r\nX(y): 1\r\n\r\n"},
		{"UpgradeWithLength", "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello"},
		{"UpgradeChunked", "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"FTPTarget", "GET ftp://example.test/x HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"UserInfoTarget", "GET http://user@example.test/x HTTP/1.1\r\nHost: x\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawExchange(t, lb, tc.req)
			if resp.StatusCode != 400 || !resp.Close {
				t.Fatalf("status %d, close %v, body %q: want 400 and the connection closed", resp.StatusCode, resp.Close, body)
			}
			jsonError(t, result{resp.StatusCode, resp.Header, body})
		})
	}
	if n := seen.Load(); n != 0 {
		t.Fatalf("the backend saw %d refused requests", n)
	}
	// The balancer still serves.
	if r := do(t, newClient(t), "GET", lbURL(lb, "/"), nil); r.status != 200 || r.body != "reached" {
		t.Fatalf("%d %q", r.status, r.body)
	}
}

// TestAbsoluteFormTarget: a target a client addresses to a proxy reaches the
// backend in origin form, with Host from the target.
func TestAbsoluteFormTarget(t *testing.T) {
	be := testBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.RequestURI+" "+r.Host+" "+r.Header.Get("X-Forwarded-Host"))
	})
	lb, _ := startLB(t, Config{HealthInterval: time.Hour}, hostport(be))
	for _, tc := range []struct{ target, want string }{
		{"http://example.test/api/posts", "/api/posts example.test example.test"},
		{"HTTP://example.test:8080/a%2Fb?x=1&y=%20", "/a%2Fb?x=1&y=%20 example.test:8080 example.test:8080"},
		{"http://example.test", "/ example.test example.test"},
		{"http://example.test?q=1", "/?q=1 example.test example.test"},
		{"/plain", "/plain other other"},
	} {
		resp, body := rawExchange(t, lb, "GET "+tc.target+" HTTP/1.1\r\nHost: other\r\n\r\n")
		if resp.StatusCode != 200 || body != tc.want {
			t.Errorf("%s: %d %q, want %q", tc.target, resp.StatusCode, body, tc.want)
		}
	}
}

// interimBackend is a raw HTTP/1.1 server that answers every request with
// 100 Continue, then 103 Early Hints, then 200 whose body is the request's
// target, each in a write of its own, on keep-alive connections.
func interimBackend(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					for _, part := range []string{
						"HTTP/1.1 100 Continue\r\n\r\n",
						"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n",
						fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(req.RequestURI), req.RequestURI),
					} {
						if _, err := io.WriteString(c, part); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// TestInterimResponses: 1xx answers before the final one are passed over,
// and no client ever gets another client's answer: 8 keep-alive clients,
// 1,000 requests in all, each answered with its own target.
func TestInterimResponses(t *testing.T) {
	lb, _ := startLB(t, Config{HealthInterval: time.Hour}, interimBackend(t))
	const clients, each = 8, 125
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc := &rawClient{addr: lb.Addr(), timeout: 10 * time.Second}
			defer rc.close()
			var resp rawResponse
			for i := range each {
				target := fmt.Sprintf("/c%d/r%d", c, i)
				if err := rc.do([]byte("GET "+target+" HTTP/1.1\r\nHost: x\r\n\r\n"), &resp); err != nil {
					errs <- fmt.Errorf("client %d request %d: %w", c, i, err)
					return
				}
				if resp.status != 200 || string(resp.body) != target {
					errs <- fmt.Errorf("client %d: %s got %d %q", c, target, resp.status, resp.body)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := lb.Backends()[0].Status(); st.Failures != 0 || st.Requests != clients*each {
		t.Fatalf("backend %+v", st)
	}
}

// TestUnaskedSwitchingProtocols: a 101 to a plain request leaves the
// backend's connection in another protocol; the client gets 502 and the
// connection is not reused.
func TestUnaskedSwitchingProtocols(t *testing.T) {
	addr := rawBackend(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		switch {
		case err != nil:
		case req.URL.Path == "/healthz":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return
		default:
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
		}
		// The balancer closes its side; only then is this one done.
		io.Copy(io.Discard, c)
	})
	lb, _ := startLB(t, Config{HealthInterval: time.Hour}, addr)
	r := do(t, newClient(t), "POST", lbURL(lb, "/"), strings.NewReader("x"))
	if r.status != 502 || strings.Contains(r.body, "stale") {
		t.Fatalf("%d %q", r.status, r.body)
	}
	jsonError(t, r)
}

// TestUpgradeAfterInterimResponses: 1xx answers before a 101 are passed over
// too; the client gets the 101 and then the tunnel.
func TestUpgradeAfterInterimResponses(t *testing.T) {
	addr := rawBackend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.URL.Path == "/healthz" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return
		}
		io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
		io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, br) // echo until the client closes
	})
	lb, _ := startLB(t, Config{HealthInterval: time.Hour}, addr)
	conn := dialLB(t, lb)
	io.WriteString(conn, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 101 ") {
		t.Fatalf("first answer %q %v, want the 101", line, err)
	}
	for {
		h, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if h == "\r\n" {
			break
		}
	}
	io.WriteString(conn, "ping\n")
	if got, err := br.ReadString('\n'); got != "ping\n" {
		t.Fatalf("through the tunnel: %q %v", got, err)
	}
	conn.Close()
}
