package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/posterctl/posterctl/lbapi"
)

// countingBackend is a backend that reads every request body to its end and
// counts its connections that are busy with a request.
func countingBackend(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var active atomic.Int64
	var mu sync.Mutex
	state := map[net.Conn]http.ConnState{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		io.WriteString(w, strconv.FormatInt(n, 10))
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		if state[c] == http.StateActive {
			active.Add(-1)
		}
		if s == http.StateActive {
			active.Add(1)
		}
		state[c] = s
		if s == http.StateClosed || s == http.StateHijacked {
			delete(state, c)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &active
}

// closeWait counts the sockets in CLOSE-WAIT whose peer is port: a
// connection the peer closed that this side never did.
func closeWait(t *testing.T, port int) int {
	t.Helper()
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			if f == "/proc/net/tcp" {
				t.Skipf("no %s on this platform: %v", f, err)
			}
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "08" { // 08: CLOSE_WAIT
				continue
			}
			rem := fields[2]
			p, err := strconv.ParseInt(rem[strings.LastIndexByte(rem, ':')+1:], 16, 32)
			if err == nil && int(p) == port {
				n++
			}
		}
	}
	return n
}

// TestStalledBodiesAreCut: 20 connections that declare a 2 MiB body, send
// 8 KiB and stop get a 408 JSON answer within 12 s (the default 10 s stall
// limit) and are closed, and so is every connection to the backend: no
// socket is left in CLOSE-WAIT.
func TestStalledBodiesAreCut(t *testing.T) {
	be, active := countingBackend(t)
	lb, _ := startLB(t, Config{HealthInterval: time.Hour}, hostport(be))
	const conns = 20
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- stallUpload(lb.Addr(), 2<<20, 8<<10, 12*time.Second)
		}()
	}
	// While they stall, the backend holds their streams.
	clitest.Eventually(t, 5*time.Second, func() error {
		if n := active.Load(); n != conns {
			return fmt.Errorf("%d uploads at the backend, want %d", n, conns)
		}
		return nil
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	clitest.Eventually(t, 5*time.Second, func() error {
		if n := active.Load(); n != 0 {
			return fmt.Errorf("%d connections still busy at the backend", n)
		}
		return nil
	})
	port, _ := strconv.Atoi(be.URL[strings.LastIndexByte(be.URL, ':')+1:])
	if n := closeWait(t, port); n != 0 {
		t.Fatalf("%d balancer sockets to the backend in CLOSE-WAIT", n)
	}
	if st := lb.Backends()[0].Status(); st.Failures != 0 || !st.Healthy {
		t.Fatalf("a client's stall counted against the backend: %+v", st)
	}
}

// stallUpload declares a body of size bytes, sends sent of them and waits
// for the answer, which must be a 408 JSON error within limit, followed by
// the end of the connection.
func stallUpload(addr string, size, sent int, limit time.Duration) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(limit + 5*time.Second))
	head := fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
	if _, err := conn.Write(append([]byte(head), make([]byte, sent)...)); err != nil {
		return err
	}
	start := time.Now()
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("no answer to a stalled body: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != 408 || resp.Header.Get("Content-Type") != "application/json" || !json.Valid(body) {
		return fmt.Errorf("stalled body: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if took > limit {
		return fmt.Errorf("stalled body answered after %v, want within %v", took, limit)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return fmt.Errorf("connection after the 408: %v, want it closed", err)
	}
	return nil
}

// TestStalledSmallBodyIsCut: the limit is a stall limit for bodies of any
// size, whether the server or the handler is reading when they stop.
func TestStalledSmallBodyIsCut(t *testing.T) {
	be, _ := countingBackend(t)
	// Above the second by which the client connection may apply a
	// deadline early (sockio.ClientConn), so that the limit means something.
	const limit = 1500 * time.Millisecond
	lb, _ := startLB(t, Config{HealthInterval: time.Hour, ReadHeaderTimeout: limit, BodyIdleTimeout: limit}, hostport(be))
	for _, tc := range []struct{ size, sent int }{
		{100_000, 10 << 10}, // kept for replay, read by the handler
		{100, 10},           // within what the server reads with the header
		{3 << 20, 1 << 20},  // streamed
	} {
		if err := stallUpload(lb.Addr(), tc.size, tc.sent, limit+time.Second); err != nil {
			t.Errorf("%d of %d bytes: %v", tc.sent, tc.size, err)
		}
	}
	// A slow body that keeps coming is not a stall: pauses of a quarter
	// second, more than the limit in all.
	conn := dialLB(t, lb)
	io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40000\r\n\r\n")
	for range 8 {
		conn.Write(make([]byte, 5000))
		<-time.After(250 * time.Millisecond)
	}
	readOK(t, bufio.NewReader(conn))
}

// TestAbortedUploadsDoNotEject: 50 clients that each declare a 2 MiB upload,
// send half and close leave both backends healthy with no failure counted,
// and the next GET is served at once.
func TestAbortedUploadsDoNotEject(t *testing.T) {
	a, b := testBackend(t, "a", nil), testBackend(t, "b", nil)
	// Probes keep running, with time to spare: 50 MiB of uploads on a
	// loaded test machine (and -race) can hold one past the default 1 s,
	// which is the backend's slowness, not what this test is about.
	lb, logs := startLB(t, Config{HealthTimeout: 5 * time.Second}, hostport(a), hostport(b))
	const clients = 50
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", lb.Addr())
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n")
			conn.Write(make([]byte, 1<<20))
		}()
	}
	wg.Wait()
	clitest.Eventually(t, 10*time.Second, func() error {
		if n := len(logs.lines("request")); n != clients {
			return fmt.Errorf("%d access lines, want %d", n, clients)
		}
		return nil
	})
	client := newClient(t)
	r := do(t, client, "GET", healthURL(lb, "/health"), nil)
	var h lbapi.Health
	if err := json.Unmarshal([]byte(r.body), &h); err != nil || r.status != 200 {
		t.Fatalf("/health %d %q: %v", r.status, r.body, err)
	}
	for _, st := range h.Backends {
		if st.State != lbapi.StateHealthy || st.Failures != 0 || st.ConsecutiveFailures != 0 {
			t.Errorf("backend after aborted uploads: %+v", st)
		}
	}
	start := time.Now()
	if r := do(t, client, "GET", lbURL(lb, "/"), nil); r.status != 200 {
		t.Fatalf("GET after aborted uploads: %d %s", r.status, r.body)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("GET after aborted uploads took %v", d)
	}
	if down := logs.lines("backend down"); len(down) != 0 {
		t.Fatalf("state changes %v", down)
	}
}

// refused reads the answer a connection over a cap gets: 503 JSON with
// Connection: close, then the end of the connection.
func refused(t *testing.T, conn net.Conn, want string) {
	t.Helper()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("over the cap: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r := result{resp.StatusCode, resp.Header, string(body)}
	if r.status != 503 || !resp.Close || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the cap: %d close=%v %q", r.status, resp.Close, r.body)
	}
	if msg := jsonError(t, r); !strings.Contains(msg, want) {
		t.Fatalf("over the cap: %q, want it to say %q", msg, want)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("over the cap, after the answer: %v, want the connection closed", err)
	}
}

func TestConnectionCaps(t *testing.T) {
	be := testBackend(t, "a", nil)
	t.Run("Total", func(t *testing.T) {
		lb, _ := startLB(t, Config{MaxConns: 4, HealthInterval: time.Hour}, hostport(be))
		var open []net.Conn
		var brs []*bufio.Reader
		for range 4 {
			conn := dialLB(t, lb)
			br := bufio.NewReader(conn)
			rawGET(t, conn, br, "")
			open, brs = append(open, conn), append(brs, br)
		}
		refused(t, dialLB(t, lb), "too many connections")
		// A crowd over the cap that never reads its answer delays nobody.
		var crowd []net.Conn
		for range 20 {
			crowd = append(crowd, dialLB(t, lb))
		}
		for i, conn := range open {
			rawGET(t, conn, brs[i], "")
		}
		// Every one of the crowd was refused, not left in the accept queue
		// to take the place the next step frees.
		for _, conn := range crowd {
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("a connection of the crowd: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != 503 {
				t.Fatalf("a connection of the crowd got %d, want 503", resp.StatusCode)
			}
		}
		// A closed connection frees its place.
		open[3].Close()
		clitest.Eventually(t, 5*time.Second, func() error {
			conn, err := net.Dial("tcp", lb.Addr())
			if err != nil {
				return err
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d: %s", resp.StatusCode, body)
			}
			return nil
		})
	})
	t.Run("PerClient", func(t *testing.T) {
		lb, _ := startLB(t, Config{MaxConnsPerClient: 2, HealthInterval: time.Hour}, hostport(be))
		for range 2 {
			conn := dialLB(t, lb)
			rawGET(t, conn, bufio.NewReader(conn), "")
		}
		refused(t, dialLB(t, lb), "from this address")
	})
	t.Run("PerClientOff", func(t *testing.T) {
		lb, _ := startLB(t, Config{MaxConnsPerClient: -1, HealthInterval: time.Hour}, hostport(be))
		for range 300 {
			dialLB(t, lb)
		}
		conn := dialLB(t, lb)
		rawGET(t, conn, bufio.NewReader(conn), "")
	})
	t.Run("BehindTrustedProxy", func(t *testing.T) {
		// Requests a trusted proxy forwards count against the client its
		// X-Forwarded-For names, while at the backend.
		arrived, release := make(chan struct{}, 4), make(chan struct{})
		slow := testBackend(t, "s", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				arrived <- struct{}{}
				<-release
			}
			io.WriteString(w, "ok")
		})
		lb, _ := startLB(t, Config{MaxConnsPerClient: 2, HealthInterval: time.Hour,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, hostport(slow))
		const xff = "X-Forwarded-For: 203.0.113.7\r\n"
		var conns []net.Conn
		for range 2 {
			conn := dialLB(t, lb)
			io.WriteString(conn, "GET /slow HTTP/1.1\r\nHost: x\r\n"+xff+"\r\n")
			<-arrived
			conns = append(conns, conn)
		}
		// A third connection from the proxy is fine; a third request of
		// that client is not, and another client's is.
		refusedReq := dialLB(t, lb)
		io.WriteString(refusedReq, "GET / HTTP/1.1\r\nHost: x\r\n"+xff+"\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(refusedReq), nil)
		if err != nil || resp.StatusCode != 503 || !resp.Close {
			t.Fatalf("third request of one client: %v %v", resp, err)
		}
		resp.Body.Close()
		other := dialLB(t, lb)
		rawGET(t, other, bufio.NewReader(other), "X-Forwarded-For: 203.0.113.7, 203.0.113.8\r\n")
		close(release)
		for _, conn := range conns {
			readOK(t, bufio.NewReader(conn))
		}
		// Once answered, they count no more.
		again := dialLB(t, lb)
		rawGET(t, again, bufio.NewReader(again), xff)
	})
}

// TestRealClient: the address a trusted proxy saw is the last one that is
// not itself a trusted proxy.
func TestRealClient(t *testing.T) {
	trusted := func(a netip.Addr) bool { return a.IsLoopback() || a.IsPrivate() }
	for _, tc := range []struct {
		values []string
		want   string
	}{
		{[]string{"203.0.113.7"}, "203.0.113.7"},
		{[]string{"198.51.100.1, 203.0.113.7, 10.0.0.1"}, "203.0.113.7"},
		{[]string{"198.51.100.1", "203.0.113.7 , 127.0.0.1"}, "203.0.113.7"},
		{[]string{"::ffff:203.0.113.7"}, "203.0.113.7"},
		{[]string{"10.0.0.1, 127.0.0.1"}, "invalid IP"},
		{[]string{"garbage, 10.0.0.1"}, "invalid IP"},
		{nil, "invalid IP"},
	} {
		var values [][]byte
		for _, v := range tc.values {
			values = append(values, []byte(v))
		}
		if got := realClient(values, trusted).String(); got != tc.want {
			t.Errorf("%q: %s, want %s", tc.values, got, tc.want)
		}
	}
}

// TestLBCommandConnCaps: `posterctl lb --max-conns` caps a real balancer
// process, and logs what it refused.
func TestLBCommandConnCaps(t *testing.T) {
	be := testBackend(t, "a", nil)
	port, health := clitest.FreePort(t), clitest.FreePort(t)
	lb := clitest.Start(t, posterctlBin, "--log-format", "json", "lb", "--host", "127.0.0.1",
		"--port", strconv.Itoa(port), "--health-port", strconv.Itoa(health), "--backend", hostport(be),
		"--max-conns", "3", "--per-client-max-conns", "0")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dial := func() (net.Conn, *bufio.Reader) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		return conn, bufio.NewReader(conn)
	}
	clitest.Eventually(t, 30*time.Second, func() error {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	})
	var open []net.Conn
	var brs []*bufio.Reader
	// The probe above may still hold a place until the balancer sees it
	// closed: wait for all three.
	for try := 0; len(open) < 3; try++ {
		if try == 20 {
			t.Fatalf("only %d connections admitted under --max-conns 3", len(open))
		}
		conn, br := dial()
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			open, brs = append(open, conn), append(brs, br)
		}
	}
	conn, _ := dial()
	refused(t, conn, "too many connections")
	rawGET(t, open[0], brs[0], "")
	if err := lb.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, c := range open {
		c.Close()
	}
	if code := lb.Wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d; output:\n%s", code, lb.Output())
	}
	if out := lb.Output(); !strings.Contains(out, `"message":"connection refused"`) || !strings.Contains(out, `"max_conns":3`) {
		t.Fatalf("no refusal logged:\n%s", out)
	}
}
