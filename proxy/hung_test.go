package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
)

// backendOf finds addr in the LB's set.
func backendOf(t *testing.T, lb *Server, addr string) *Backend {
	t.Helper()
	for _, b := range lb.set.load() {
		if b.addr == addr {
			return b
		}
	}
	t.Fatalf("backend %s not in the set", addr)
	return nil
}

// TestHungBackend SIGSTOPs one of two backends for 5 s under GETs and plain
// POSTs from keep-alive clients that never retry: no GET fails or takes 2 s,
// a plain POST sent to the stopped backend gets 504 within 2 s, and the
// backend is back within 1 s of SIGCONT.
func TestHungBackend(t *testing.T) {
	if testing.Short() {
		t.Skip("8 s of load")
	}
	const (
		clients = 8
		stopAt  = 1500 * time.Millisecond
		frozen  = 5 * time.Second
		runFor  = 8 * time.Second
		pace    = 5 * time.Millisecond
	)
	addrA, addrB := deadAddr(t), deadAddr(t)
	a := startHelperBackend(t, addrA, "a")
	startHelperBackend(t, addrB, "b")
	lb, _ := startLB(t, Config{}, addrA, addrB)
	ba := backendOf(t, lb, addrA)
	t.Cleanup(func() { _ = a.Signal(syscall.SIGCONT) })

	var (
		mu      sync.Mutex
		samples []sample
		wg      sync.WaitGroup
	)
	start := time.Now()
	stop := start.Add(runFor)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc := &rawClient{addr: lb.Addr(), timeout: 10 * time.Second}
			defer rc.close()
			var resp rawResponse
			var local []sample
			tick := time.NewTicker(pace)
			defer tick.Stop()
			for n := 0; time.Now().Before(stop); n++ {
				k := kindGET
				if (n+c)%2 == 1 {
					k = kindPOST
				}
				s := sample{kind: k, id: fmt.Sprintf("c%d-%d", c, n), start: time.Now()}
				s.err = rc.do(failoverRequest(k, s.id), &resp)
				s.dur = time.Since(s.start)
				if s.err == nil {
					s.status, s.backend = resp.status, string(resp.backend)
					s.errorMsg = string(resp.body)
				}
				local = append(local, s)
				<-tick.C
			}
			mu.Lock()
			samples = append(samples, local...)
			mu.Unlock()
		}()
	}

	<-time.After(time.Until(start.Add(stopAt)))
	stoppedAt := time.Now()
	if err := a.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	clitest.Eventually(t, 3*time.Second, func() error {
		if ba.Available() {
			return fmt.Errorf("stopped backend still in rotation")
		}
		return nil
	})
	ejected := time.Since(stoppedAt)
	<-time.After(time.Until(stoppedAt.Add(frozen)))
	contAt := time.Now()
	if err := a.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	clitest.Eventually(t, 3*time.Second, func() error {
		if !ba.Available() {
			return fmt.Errorf("backend not back after SIGCONT")
		}
		return nil
	})
	back := time.Since(contAt)
	wg.Wait()

	var (
		slowestGET, slowestPOST time.Duration
		gets, posts, posts504   int
	)
	for _, s := range samples {
		switch s.kind {
		case kindGET:
			gets++
			slowestGET = max(slowestGET, s.dur)
			if s.err != nil || s.status != 200 {
				t.Errorf("GET %s at %v failed after %v: %v %d %s", s.id, s.start.Sub(start), s.dur, s.err, s.status, s.errorMsg)
			}
		default:
			posts++
			slowestPOST = max(slowestPOST, s.dur)
			switch {
			case s.err != nil:
				t.Errorf("plain POST %s: %v (the balancer must answer)", s.id, s.err)
			case s.status == 504:
				posts504++
				if s.dur > 2*time.Second {
					t.Errorf("plain POST %s: 504 after %v, want within 2 s", s.id, s.dur)
				}
			case s.status != 200:
				t.Errorf("plain POST %s: status %d %s", s.id, s.status, s.errorMsg)
			}
		}
	}
	if slowestGET > 2*time.Second {
		t.Errorf("slowest GET took %v, want under 2 s", slowestGET)
	}
	if ejected > 1500*time.Millisecond {
		t.Errorf("stopped backend ejected after %v, want within 1.5 s", ejected)
	}
	if back > time.Second {
		t.Errorf("backend back %v after SIGCONT, want within 1 s", back)
	}
	if posts504 == 0 {
		t.Errorf("no plain POST got 504: none was caught on the stopped backend")
	}
	t.Logf("measured: ejected %v after SIGSTOP, back %v after SIGCONT; %d GETs (slowest %v), %d plain POSTs (%d got 504, slowest %v)",
		ejected.Round(time.Millisecond), back.Round(time.Millisecond), gets, slowestGET.Round(time.Millisecond),
		posts, posts504, slowestPOST.Round(time.Millisecond))
}

// TestSlowBackendNotHung: 50 concurrent requests that each take 2 s on a
// backend that still answers its probe quickly all succeed, and the backend
// stays in rotation.
func TestSlowBackendNotHung(t *testing.T) {
	addr := deadAddr(t)
	startHelperBackend(t, addr, "slow", "POSTERCTL_PROXY_HELPER_SLOW=2s")
	lb, _ := startLB(t, Config{}, addr)
	b := backendOf(t, lb, addr)
	const n = 50
	errs := make(chan error, n)
	var wg sync.WaitGroup
	begun := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc := &rawClient{addr: lb.Addr(), timeout: 10 * time.Second}
			defer rc.close()
			var resp rawResponse
			if err := rc.do(failoverRequest(kindPOST, fmt.Sprintf("login-%d", i)), &resp); err != nil {
				errs <- err
			} else if resp.status != 200 {
				errs <- fmt.Errorf("status %d: %s", resp.status, resp.body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if !b.Available() {
		t.Errorf("slow backend taken out of rotation: %s", b.Status().LastError)
	}
	t.Logf("measured: %d requests of 2 s each answered in %v, backend stayed in rotation", n, time.Since(begun).Round(time.Millisecond))
}

// TestHungAttemptAbandoned: a backend that answers nothing, probe included,
// gets a plain POST 504 in under 2 s and a GET retried elsewhere; the
// abandoned connections never go back to the pool, so the answers the
// backend gives once it resumes reach no one.
func TestHungAttemptAbandoned(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	resume := func() { once.Do(func() { close(release) }) }
	t.Cleanup(resume)
	var frozen atomic.Bool
	stuck := testBackend(t, "stuck", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-release
		io.WriteString(w, `{"late":true}`)
	})
	// The probe hangs too while frozen: wrap the server's handler.
	inner := stuck.Config.Handler
	stuck.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if frozen.Load() {
			<-release
		}
		inner.ServeHTTP(w, r)
	})
	other := testBackend(t, "other", nil)
	lb, logs := startLB(t, Config{}, hostport(stuck), hostport(other))
	frozen.Store(true)
	b := backendOf(t, lb, hostport(stuck))

	// Round robin: of two requests picked in a row, one goes to the stuck
	// backend; each request is sent once the one before has been picked.
	bo := backendOf(t, lb, hostport(other))
	picked := func() uint64 { return b.requests.Load() + bo.requests.Load() }
	type res struct {
		kind   reqKind
		status int
		body   string
		took   time.Duration
		err    error
	}
	out := make(chan res, 4)
	for i, k := range []reqKind{kindPOST, kindPOST, kindGET, kindGET} {
		go func() {
			rc := &rawClient{addr: lb.Addr(), timeout: 10 * time.Second}
			defer rc.close()
			var resp rawResponse
			begun := time.Now()
			err := rc.do(failoverRequest(k, fmt.Sprintf("r%d", i)), &resp)
			out <- res{k, resp.status, string(resp.body), time.Since(begun), err}
		}()
		clitest.Eventually(t, 2*time.Second, func() error {
			if n := picked(); n < uint64(i+1) {
				return fmt.Errorf("%d requests picked, want %d", n, i+1)
			}
			return nil
		})
	}
	var got504 int
	for range 4 {
		r := <-out
		switch {
		case r.err != nil:
			t.Errorf("%s: %v", r.kind, r.err)
		case r.took > 2*time.Second:
			t.Errorf("%s: answered after %v", r.kind, r.took)
		case r.kind == kindGET && r.status != 200:
			t.Errorf("GET: %d %s, want 200 from the other backend", r.status, r.body)
		case r.kind == kindPOST && r.status == 504:
			got504++
			if !strings.Contains(r.body, "stopped answering") {
				t.Errorf("504 body %s", r.body)
			}
		case r.kind == kindPOST && r.status != 200:
			t.Errorf("plain POST: %d %s", r.status, r.body)
		}
	}
	if got504 == 0 {
		t.Error("no plain POST reached the stuck backend")
	}
	if b.Available() {
		t.Error("hung backend still in rotation")
	}
	frozen.Store(false)
	resume()
	clitest.Eventually(t, 3*time.Second, func() error {
		if !b.Available() {
			return fmt.Errorf("not back")
		}
		return nil
	})
	b.conns.mu.Lock()
	for _, c := range b.conns.idle {
		if c.abandoned.Load() {
			t.Error("an abandoned connection is in the pool")
		}
	}
	b.conns.mu.Unlock()
	if n := len(logs.lines("backend down")); n != 1 {
		t.Errorf("%d 'backend down' log lines, want 1", n)
	}
}
