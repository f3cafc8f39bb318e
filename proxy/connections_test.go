package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawGET sends one GET on conn and reads its response.
func rawGET(t *testing.T, conn net.Conn, br *bufio.Reader, extra string) {
	t.Helper()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n"+extra+"\r\n"); err != nil {
		t.Fatal(err)
	}
	readOK(t, br)
}

func readOK(t *testing.T, br *bufio.Reader) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// TestKeepAlive: one connection carries request after request, whatever
// their size or however they come.
func TestKeepAlive(t *testing.T) {
	be := testBackend(t, "a", nil)
	lb, _ := startLB(t, Config{}, hostport(be))
	conn := dialLB(t, lb)
	br := bufio.NewReader(conn)
	for range 5 {
		rawGET(t, conn, br, "")
	}
	// Larger than one read, and than the balancer's write buffer.
	rawGET(t, conn, br, "X-Big: "+strings.Repeat("b", 10<<10)+"\r\n")
	rawGET(t, conn, br, "")
	// Two requests in one write: both answered, in order.
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
	readOK(t, br)
	readOK(t, br)
	// A request that comes in pieces, after a pause.
	io.WriteString(conn, "GET / HTTP/1.1\r\n")
	io.WriteString(conn, "Host: x\r\n\r\n")
	readOK(t, br)
}

// TestIdleTimeout: a kept-alive connection with no next request is closed
// at the idle timeout.
func TestIdleTimeout(t *testing.T) {
	be := testBackend(t, "a", nil)
	lb, _ := startLB(t, Config{ClientIdleTimeout: 300 * time.Millisecond}, hostport(be))
	conn := dialLB(t, lb)
	br := bufio.NewReader(conn)
	rawGET(t, conn, br, "")
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want it closed (EOF)", err)
	}
}

// TestCloseClosesIdleConnections: connections waiting for their next request
// do not hold up a graceful stop; they are closed.
func TestCloseClosesIdleConnections(t *testing.T) {
	be := testBackend(t, "a", nil)
	cfg := Config{ClientIdleTimeout: time.Minute}
	cfg.Listen, cfg.HealthListen, cfg.Backends = "127.0.0.1:0", "127.0.0.1:0", []string{hostport(be)}
	lb, err := NewServer(cfg, zerologNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := lb.Open(); err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for range 4 {
		conn := dialLB(t, lb)
		rawGET(t, conn, bufio.NewReader(conn), "")
		conns = append(conns, conn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := lb.Close(ctx); err != nil {
		t.Fatalf("close with idle keep-alive connections: %v", err)
	}
	for i, conn := range conns {
		if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("connection %d after close: %v, want EOF", i, err)
		}
	}
}

// TestPipelinedWhileAtBackend: a client that sends its next request while
// the first is still at the backend gets both answers without delay. The
// next request came before the first response went out, so a wait for
// readiness begun with that write would never see it.
func TestPipelinedWhileAtBackend(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	be := testBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	})
	lb, _ := startLB(t, Config{ClientIdleTimeout: time.Minute}, hostport(be))
	conn := dialLB(t, lb)
	br := bufio.NewReader(conn)
	rawGET(t, conn, br, "") // a response written, the connection kept
	io.WriteString(conn, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-arrived
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	close(release)
	readOK(t, br)
	readOK(t, br)
}
