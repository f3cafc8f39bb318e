package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/posterctl/posterctl/lbapi"
)

// backendState is the LB's view of the backend on port.
func (c *cluster) backendState(t *testing.T, port int) string {
	t.Helper()
	resp, err := noRetryClient().Get(fmt.Sprintf("http://127.0.0.1:%d/health", c.health))
	if err != nil {
		return "unreachable: " + err.Error()
	}
	defer resp.Body.Close()
	var h lbapi.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return "bad /health: " + err.Error()
	}
	for _, b := range h.Backends {
		if b.Address == "127.0.0.1:"+strconv.Itoa(port) {
			return b.State
		}
	}
	return "absent"
}

// TestBackendStoppedUnderKeepAliveLoad SIGSTOPs one backend for 5 s under
// GETs and plain POSTs from kept-alive connections that never retry: no GET
// fails or takes more than 2 s, a plain POST caught on the stopped backend
// gets 504 within 2 s, and the backend is back within 1 s of SIGCONT.
func TestBackendStoppedUnderKeepAliveLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("5 s freeze")
	}
	c := newCluster(t)
	c.up(startLimit, "--grace", "5s")
	b1 := child(c.status(), "backend-1")
	l := startKeepAliveLoadOpts(t, c, true)
	stoppedAt := time.Now()
	if err := syscall.Kill(b1.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(b1.Pid, syscall.SIGCONT) })
	clitest.Eventually(t, 5*time.Second, func() error {
		if st := c.backendState(t, b1.Port); st != lbapi.StateDown {
			return fmt.Errorf("stopped backend is %s", st)
		}
		return nil
	})
	ejected := time.Since(stoppedAt)
	<-time.After(time.Until(stoppedAt.Add(5 * time.Second)))
	contAt := time.Now()
	if err := syscall.Kill(b1.Pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	clitest.Eventually(t, 5*time.Second, func() error {
		if st := c.backendState(t, b1.Port); st != lbapi.StateHealthy {
			return fmt.Errorf("backend is %s after SIGCONT", st)
		}
		return nil
	})
	back := time.Since(contAt)
	l.check(t, "5 s SIGSTOP of backend-1", time.Since(stoppedAt))
	slowGet, slowPost := time.Duration(l.slowGet.Load()), time.Duration(l.slowPost.Load())
	t.Logf("measured: ejected %v after SIGSTOP, back %v after SIGCONT; slowest GET %v, slowest plain POST %v, %d plain POSTs got 504",
		ejected.Round(time.Millisecond), back.Round(time.Millisecond), slowGet.Round(time.Millisecond), slowPost.Round(time.Millisecond), l.posts504.Load())
	if slowGet > 2*time.Second {
		t.Errorf("slowest GET took %v, want at most 2 s", slowGet)
	}
	if back > time.Second {
		t.Errorf("backend back %v after SIGCONT, want within 1 s", back)
	}
	if ejected > 2*time.Second {
		t.Errorf("stopped backend ejected after %v", ejected)
	}
}
