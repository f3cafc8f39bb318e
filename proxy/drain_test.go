//go:build unix

package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/posterctl/posterctl/internal/clitest"
)

// serveOn runs a balancer on a copy of the shared listening socket, as the
// supervisor hands one socket to each generation.
func serveOn(t *testing.T, shared *net.TCPListener, backends ...string) *Server {
	t.Helper()
	f, err := shared.File()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(Config{Listen: ln.Addr().String(), HealthListen: hln.Addr().String(), Backends: backends}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.serve(ln, hln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

// TestDrainHandOverKeepAlive hands the socket from one balancer to the next
// three times under GETs and plain POSTs from 16 keep-alive clients that
// never retry: no request fails, because a draining balancer answers each
// connection's next request with Connection: close and closes only
// connections that stayed idle.
func TestDrainHandOverKeepAlive(t *testing.T) {
	backend := testBackend(t, "a", nil)
	shared, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shared.Close() })
	tl := shared.(*net.TCPListener)
	lb := serveOn(t, tl, hostport(backend))
	// From here on only the balancers' copies accept.
	shared.Close()

	const clients = 16
	var (
		ok, failed atomic.Int64
		firstErr   atomic.Value
		stop       = make(chan struct{})
		wg         sync.WaitGroup
	)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc := &rawClient{addr: lb.Addr(), timeout: 5 * time.Second}
			defer rc.close()
			var resp rawResponse
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				k := kindGET
				if (n+c)%2 == 1 {
					k = kindPOST
				}
				err := rc.do(failoverRequest(k, fmt.Sprintf("c%d-%d", c, n)), &resp)
				if err == nil && resp.status != 200 {
					err = fmt.Errorf("status %d: %s", resp.status, resp.body)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	flowing := func(min int64) {
		clitest.Eventually(t, 5*time.Second, func() error {
			if n := ok.Load(); n < min {
				return fmt.Errorf("%d requests answered", n)
			}
			return nil
		})
	}
	flowing(500)
	var drains []time.Duration
	for range 3 {
		// The next balancer on the same socket, then the old one drains.
		s := serveOn(t, lb.ln.(*net.TCPListener), hostport(backend))
		begun := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = lb.Close(ctx)
		cancel()
		if err != nil {
			t.Fatalf("drain: %v", err)
		}
		drains = append(drains, time.Since(begun))
		lb = s
		flowing(ok.Load() + 500)
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed across 3 hand-overs; first: %v", n, n+ok.Load(), firstErr.Load())
	}
	t.Logf("measured: 3 hand-overs, drains took %v; %d requests, none failed", drains, ok.Load())
}

// TestDrainClosesIdleConnections: a connection that sends nothing is closed
// after the quiet period, and a request already in the receive buffer is
// answered (with Connection: close) rather than lost.
func TestDrainClosesIdleConnections(t *testing.T) {
	backend := testBackend(t, "a", nil)
	lb, _ := startLB(t, Config{}, hostport(backend))
	idle := dialLB(t, lb)
	busy := dialLB(t, lb)
	// Both connections are known to the server before the drain.
	for _, c := range []net.Conn{idle, busy} {
		rc := &rawClient{conn: c, timeout: 5 * time.Second, br: bufio.NewReader(c)}
		var resp rawResponse
		if _, err := c.Write(failoverRequest(kindGET, "warm")); err != nil {
			t.Fatal(err)
		}
		if err := rc.read(&resp); err != nil || resp.status != 200 {
			t.Fatalf("warm-up: %v %d", err, resp.status)
		}
	}
	done := make(chan error, 1)
	begun := time.Now()
	go func() { done <- lb.Close(context.Background()) }()
	clitest.Eventually(t, 2*time.Second, func() error {
		if !lb.clients.draining.Load() {
			return errors.New("not draining yet")
		}
		return nil
	})
	// A request on the wire during the drain is answered and closes.
	rc := &rawClient{conn: busy, timeout: 5 * time.Second, br: bufio.NewReader(busy)}
	var resp rawResponse
	if _, err := busy.Write(failoverRequest(kindPOST, "during-drain")); err != nil {
		t.Fatal(err)
	}
	// read closes the client's side when the answer says Connection: close.
	if err := rc.read(&resp); err != nil || resp.status != 200 || rc.conn != nil {
		t.Fatalf("request during the drain: %v status %d, connection kept %v", err, resp.status, rc.conn != nil)
	}
	// The idle one is closed by the server: EOF, not a reset.
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if _, err := idle.Read(b[:]); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begun); d < drainQuiet {
		t.Errorf("drain took %v, less than the quiet period %v", d, drainQuiet)
	}
}
