package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/posterctl/posterctl/internal/clitest"
)

// helperEnv makes the test binary a fixed-response backend (see
// runHelperBackend), so the failover test and the benchmark have backends they
// can SIGKILL and restart by pid.
const helperEnv = "POSTERCTL_PROXY_HELPER_ADDR"

// posterctlBin is the posterctl binary the command tests drive: the one
// POSTERCTL_TEST_BIN names (make test builds it once for every package),
// else built here once (see clitest.Build).
var posterctlBin string

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperEnv); addr != "" {
		os.Exit(runHelperBackend(addr))
	}
	bin, cleanup, err := clitest.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "build posterctl:", err)
		os.Exit(1)
	}
	posterctlBin = bin
	code := m.Run()
	cleanup()
	if code == 0 {
		// Two goroutines are fasthttp's, not ours: its worker-pool janitor
		// sleeps out its interval (10 s) after the server stops, then
		// returns; and its process-wide Date refresher, started once on
		// first use, never ends.
		if err := goleak.Find(
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// logBuffer collects log lines from concurrent writers, through lw when it
// is set, as `posterctl lb` writes its log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	lw  *LogWriter
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// lines returns the JSON log lines whose message is msg.
func (l *logBuffer) lines(msg string) []map[string]any {
	if l.lw != nil {
		_ = l.lw.Flush()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// startLB runs a balancer on free ports in this process; cfg's zero fields
// take their defaults. It logs as `posterctl lb` does off a terminal: JSON
// through a LogWriter, access lines through an AccessLog.
func startLB(t testing.TB, cfg Config, backends ...string) (*Server, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	logs.lw = NewLogWriter(logs, 10*time.Millisecond)
	cfg.Listen, cfg.HealthListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Backends = backends
	if cfg.AdminToken == "" {
		cfg.AdminToken = testAdminToken
	}
	s, err := NewServer(cfg, zerolog.New(logs.lw), nil)
	if err != nil {
		logs.lw.Close()
		t.Fatalf("new server: %v", err)
	}
	s.SetAccessLog(NewAccessLog(logs.lw))
	if err := s.Open(); err != nil {
		logs.lw.Close()
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		logs.lw.Close()
	})
	return s, logs
}

// testBackend is an in-process backend named name: /healthz answers 200, and
// every response carries X-Backend. handler nil means a small JSON answer.
func testBackend(t testing.TB, name string, handler http.HandlerFunc) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	})
	if handler == nil {
		handler = func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok":true}`)
		}
	}
	mux.HandleFunc("/", handler)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func hostport(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// newClient returns a client whose idle connections are closed at cleanup
// (goleak would otherwise see their goroutines).
func newClient(t testing.TB) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: adminAuth{tr}, Timeout: 10 * time.Second}
}

// testAdminToken is the admin token of startLB's balancers; newClient's
// clients send it on /admin paths unless the request carries its own
// Authorization header.
const testAdminToken = "test-admin-token-0123456789abcdef"

type adminAuth struct{ rt http.RoundTripper }

func (a adminAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.URL.Path, "/admin") {
		if _, set := r.Header["Authorization"]; !set {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+testAdminToken)
		} else if r.Header.Get("Authorization") == "" {
			r = r.Clone(r.Context())
			r.Header.Del("Authorization") // an empty one asks for none
		}
	}
	return a.rt.RoundTrip(r)
}

// dialLB opens a raw connection to the balancer, with a 10 s deadline so a
// test that waits for an answer cannot hang; it is closed at cleanup.
func dialLB(t testing.TB, lb *Server) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", lb.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn
}

type result struct {
	status int
	header http.Header
	body   string
}

func do(t testing.TB, c *http.Client, method, url string, body io.Reader, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}

// jsonError decodes an error body and checks it is the proxy's JSON.
func jsonError(t testing.TB, r result) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error content type %q, body %q", ct, r.body)
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error == "" {
		t.Fatalf("error body %q is not {\"error\": …}: %v", r.body, err)
	}
	return e.Error
}

func lbURL(s *Server, path string) string { return "http://" + s.Addr() + path }

func healthURL(s *Server, path string) string {
	return fmt.Sprintf("http://%s%s", s.HealthAddr(), path)
}

func zerologNop() zerolog.Logger { return zerolog.Nop() }

// rawBackend serves every connection to a new listener on 127.0.0.1 with
// serve, in a goroutine of its own, under a 10 s deadline, and closes it
// after; the listener is closed and every serve awaited at cleanup. It
// returns the listener's address.
func rawBackend(t testing.TB, serve func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return l.Addr().String()
}
