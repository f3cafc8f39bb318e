package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/posterctl/posterctl/supervisor"
)

// up on a store that can never work fails within 1 s, with one line naming
// the file and the cause, and starts no child.
func TestUpFailsFastOnBrokenStore(t *testing.T) {
	check := func(t *testing.T, c *cluster, want ...string) {
		t.Helper()
		// Warm: the first start of a fresh -race binary on a loaded machine
		// is slow for reasons that are not up's.
		c.run(10*time.Second, "--version")
		begun := time.Now()
		out, errOut, code := c.run(10*time.Second, append([]string{"up"}, c.flags()...)...)
		took := time.Since(begun)
		t.Logf("up failed in %v: %s", took.Round(time.Millisecond), strings.TrimSpace(errOut))
		if code == 0 || took > time.Second {
			t.Fatalf("up: exit %d after %v, want a failure within 1 s\n%s%s", code, took, out, errOut)
		}
		for _, w := range want {
			if !strings.Contains(errOut, w) {
				t.Errorf("error lacks %q:\n%s", w, errOut)
			}
		}
		if strings.Contains(out, "backend-1") || strings.Contains(out, "lb ") || len(c.leftovers()) > 0 {
			t.Fatalf("a child was started:\n%s", out)
		}
	}
	t.Run("RandomBytes", func(t *testing.T) {
		c := newCluster(t)
		if err := os.MkdirAll(c.dataDir, 0o755); err != nil {
			t.Fatal(err)
		}
		db := filepath.Join(c.dataDir, "poster.db")
		junk := make([]byte, 64<<10)
		for i := range junk {
			junk[i] = byte(i*2654435761>>7 + 5)
		}
		if err := os.WriteFile(db, junk, 0o600); err != nil {
			t.Fatal(err)
		}
		check(t, c, db, "not a SQLite database")
	})
	t.Run("ReadOnlyDataDir", func(t *testing.T) {
		c := newCluster(t)
		if err := os.MkdirAll(c.dataDir, 0o755); err != nil {
			t.Fatal(err)
		}
		// A read-only mount: file modes alone do not stop root.
		if out, err := exec.Command("mount", "--bind", c.dataDir, c.dataDir).CombinedOutput(); err != nil {
			t.Skipf("cannot bind-mount here (%v: %s): the read-only case is not tried", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("umount", c.dataDir).Run() })
		if out, err := exec.Command("mount", "-o", "remount,bind,ro", c.dataDir).CombinedOutput(); err != nil {
			t.Skipf("cannot remount read-only here (%v: %s)", err, out)
		}
		check(t, c, c.dataDir, "read-only")
	})
}

// Ctrl+C with the output going to a pipe whose reader is gone (`| tee`,
// killed by the same Ctrl+C): the graceful stop completes and leaves
// nothing behind.
func TestStopSurvivesClosedPipe(t *testing.T) {
	c := newCluster(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := c.cmd(append([]string{"up"}, c.flags()...)...)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "cluster ready") {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("up ended before it was ready")
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("not ready within 60 s")
	}
	r.Close() // the reader is gone: every write from here gets EPIPE
	// Requests make the children log, which the supervisor copies to the
	// dead pipe.
	for range 5 {
		if resp, err := noRetryClient().Get(c.url("/api/posts")); err == nil {
			resp.Body.Close()
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("up did not stop cleanly: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("no stop within 30 s")
	}
	for _, f := range []string{supervisor.SocketName, supervisor.PidName} {
		if _, err := os.Stat(filepath.Join(c.runDir, f)); err == nil {
			t.Errorf("%s left behind", f)
		}
	}
	if left := c.leftovers(); len(left) > 0 {
		t.Errorf("%d processes left behind", len(left))
	}
}

// A backend on another store (another --db) never enters rotation, even
// told the cluster's store id: its /healthz says why, and the LB keeps it
// down.
func TestForeignStoreNeverInRotation(t *testing.T) {
	c := newCluster(t)
	remote := clitest.FreePort(t)
	c.up(60*time.Second, "--remote-backend", fmt.Sprintf("127.0.0.1:%d", remote))
	var h struct {
		StoreID string `json:"store_id"`
	}
	resp, err := noRetryClient().Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", c.basePort))
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil || h.StoreID == "" {
		t.Fatalf("backend-1 reports no store id (%v)", err)
	}
	other := filepath.Join(t.TempDir(), "other.db")
	p := clitest.StartCmd(t, c.cmd("backend", "--port", fmt.Sprint(remote), "--db", other, "--store-id", h.StoreID))
	defer func() {
		_ = p.Signal(syscall.SIGTERM)
		p.Wait(t, 15*time.Second)
	}()
	var body string
	clitest.Eventually(t, 15*time.Second, func() error {
		resp, err := noRetryClient().Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", remote))
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "another data set") {
			return fmt.Errorf("foreign backend's healthz: %d %s", resp.StatusCode, b)
		}
		return nil
	})
	t.Logf("foreign backend's /healthz: %s", strings.TrimSpace(body))
	// The LB takes a new backend as healthy until its probes fail (fall
	// 2); from then on, over 4 s, it must never be healthy again, and no
	// request may be answered by it.
	addr := fmt.Sprintf("127.0.0.1:%d", remote)
	clitest.Eventually(t, 10*time.Second, func() error {
		if got := child(c.status(), addr); got.Health == "healthy" {
			return fmt.Errorf("the LB has not yet seen the foreign backend fail: %+v", got)
		}
		return nil
	})
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		if got := child(c.status(), addr); got.Health == "healthy" {
			t.Fatalf("the foreign backend is in rotation: %+v", got)
		}
		resp, err := noRetryClient().Get(c.url("/api/posts"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if b := resp.Header.Get("X-Backend"); strings.Contains(b, fmt.Sprint(remote)) {
			t.Fatalf("answered by the foreign backend %s", b)
		}
	}
}

// The acceptance test of the front door: the real LB SIGKILLed each time it
// comes up, more often than the restart limit allows; every connection
// meanwhile gets an HTTP answer within 2 s, and `restart lb` brings it back.
func TestLBCrashLoopNeverHangs(t *testing.T) {
	c := newCluster(t)
	c.up(60*time.Second, "--restart-limit", "2", "--restart-window", "1m", "--restart-backoff-max", "2s")
	var mu sync.Mutex
	var n, n503, bad int
	var slowest time.Duration
	var kills []time.Time
	var firstBad string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, u := range []string{c.url("/api/posts"), fmt.Sprintf("http://127.0.0.1:%d/health", c.health)} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			defer cl.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				begun := time.Now()
				resp, err := cl.Get(u)
				code, body := 0, ""
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					code, body = resp.StatusCode, string(b)
				}
				d := time.Since(begun)
				mu.Lock()
				n++
				slowest = max(slowest, d)
				cut := false // the connection was held by the process a kill took
				for _, k := range kills {
					cut = cut || (err != nil && d < 2*time.Second && k.After(begun.Add(-100*time.Millisecond)) && k.Before(begun.Add(d)))
				}
				switch {
				case cut:
				case err == nil && d <= 2*time.Second && (code == 200 || (code == 503 && strings.Contains(body, "load balancer restarting") && resp.Header.Get("Retry-After") != "")):
					if code == 503 {
						n503++
					}
				case err == nil && d <= 2*time.Second && code == 503 && strings.HasPrefix(u, c.url("")) && strings.Contains(body, "error"):
					// the LB's own 503 (no healthy backend yet) is an answer too
				default:
					bad++
					if firstBad == "" {
						firstBad = fmt.Sprintf("%s after %v: %d %q %v", u, d, code, body, err)
					}
				}
				mu.Unlock()
			}
		}()
	}
	halt := func() {
		select {
		case <-stop:
		default:
			close(stop)
			wg.Wait()
		}
	}
	defer halt()
	last := 0
	for i := range 5 {
		var pid int
		clitest.Eventually(t, 30*time.Second, func() error {
			lb := child(c.status(), "lb")
			if lb.State == supervisor.Fatal {
				t.Fatalf("lb given up: %+v", lb)
			}
			if lb.State != supervisor.Running || lb.Pid == last {
				return fmt.Errorf("kill %d: lb %s pid %d", i, lb.State, lb.Pid)
			}
			pid = lb.Pid
			return nil
		})
		mu.Lock()
		kills = append(kills, time.Now())
		mu.Unlock()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		last = pid
	}
	var lb supervisor.ChildStatus
	clitest.Eventually(t, 10*time.Second, func() error {
		lb = child(c.statusCLI(), "lb")
		if lb.State != supervisor.Backoff || !strings.Contains(lb.Reason, "crash loop") || lb.NextRetry == nil {
			return fmt.Errorf("lb after the kills: %+v", lb)
		}
		return nil
	})
	t.Logf("status during the loop: %s, %d restarts, last exit %q, reason %q", lb.State, lb.Restarts, lb.LastExit, lb.Reason)
	out, took := c.ctl("restart", "lb")
	t.Logf("restart lb on the crash loop took %v: %s", took.Round(time.Millisecond), strings.TrimSpace(out))
	if lb = child(c.status(), "lb"); lb.State != supervisor.Running || lb.Pid == last {
		t.Fatalf("after restart lb: %+v", lb)
	}
	halt()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d connections during 5 kills: %d answered 503 by the supervisor, slowest answer %v", n, n503, slowest.Round(time.Millisecond))
	if bad > 0 || n503 == 0 {
		t.Fatalf("%d of %d connections without an answer within 2 s; first: %s", bad, n, firstBad)
	}
}
