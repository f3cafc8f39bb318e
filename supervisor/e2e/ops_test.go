package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/posterctl/posterctl/supervisor"
)

// load is steady traffic through the LB: one goroutine of GETs and one of
// plain POSTs (no Idempotency-Key, so the LB may not retry them once sent),
// each on a client that never retries behind the test's back.
type load struct {
	gets, posts, failed atomic.Int64
	firstErr            atomic.Value
	stop                chan struct{}
	wg                  sync.WaitGroup
}

func startLoad(t *testing.T, c *cluster) *load {
	t.Helper()
	cl := noRetryClient()
	cookie := registerAndLogin(t, cl, c.url(""), fmt.Sprintf("load%d", time.Now().UnixNano()%1e9))
	l := &load{stop: make(chan struct{})}
	loop := func(count *atomic.Int64, want int, req func(i int) *http.Request) {
		defer l.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			resp, err := cl.Do(req(i))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				l.failed.Add(1)
				l.firstErr.CompareAndSwap(nil, err.Error())
				continue
			}
			count.Add(1)
		}
	}
	l.wg.Add(2)
	go loop(&l.gets, 200, func(int) *http.Request {
		r, _ := http.NewRequest("GET", c.url("/api/posts?limit=5"), nil)
		return r
	})
	go loop(&l.posts, 201, func(i int) *http.Request {
		r, _ := http.NewRequest("POST", c.url("/api/posts"), strings.NewReader(fmt.Sprintf(`{"content":"under load %d"}`, i)))
		r.Header.Set("Content-Type", "application/json")
		r.AddCookie(cookie)
		return r
	})
	t.Cleanup(l.halt)
	clitest.Eventually(t, 10*time.Second, func() error {
		if l.gets.Load() < 20 || l.posts.Load() < 20 {
			return fmt.Errorf("load not flowing: %d GETs %d POSTs, %d failed (%v)", l.gets.Load(), l.posts.Load(), l.failed.Load(), l.firstErr.Load())
		}
		return nil
	})
	return l
}

func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// check stops the load and fails the test on any failed request.
func (l *load) check(t *testing.T, what string, took time.Duration) {
	t.Helper()
	l.halt()
	n := l.gets.Load() + l.posts.Load()
	if f := l.failed.Load(); f != 0 {
		t.Fatalf("%s: %d of %d requests failed; first: %v", what, f, f+n, l.firstErr.Load())
	}
	t.Logf("measured: %s took %v; %d requests (%d GETs, %d plain POSTs) through it, none failed",
		what, took.Round(time.Millisecond), n, l.gets.Load(), l.posts.Load())
}

// ctl runs a posterctl command that must succeed and returns its output.
func (c *cluster) ctl(args ...string) (string, time.Duration) {
	c.t.Helper()
	begun := time.Now()
	out, errOut, code := c.run(2*time.Minute, append(args[:1:1], append([]string{"--run-dir", c.runDir}, args[1:]...)...)...)
	if code != 0 {
		c.t.Fatalf("posterctl %v: exit %d\n%s%s", args, code, out, errOut)
	}
	return out, time.Since(begun)
}

// ownBinary copies the test binary into the test's dir and makes c run it,
// so the test can replace it as a user deploying a new build would.
func ownBinary(t *testing.T, c *cluster) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "posterctl")
	install(t, exe)
	c.bin = exe
	return exe
}

// install puts a fresh copy of the binary at path the way `go build -o` or
// a deploy does: a new file renamed over the old, which running processes
// keep using.
func install(t *testing.T, path string) os.FileInfo {
	t.Helper()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// runs reports whether the process pid executes the file fi.
func runs(pid int, fi os.FileInfo) bool {
	exe, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && os.SameFile(exe, fi)
}

func TestRestartBackendsUnderLoad(t *testing.T) {
	c := newCluster(t)
	exe := ownBinary(t, c)
	c.up(startLimit, "--grace", "5s")
	before := c.status()

	l := startLoad(t, c)
	out, took := c.ctl("restart")
	l.check(t, "restart of every backend", took)
	if !strings.Contains(out, "backend-1: restarted") || !strings.Contains(out, "backend-2: restarted") {
		t.Fatalf("restart output:\n%s", out)
	}
	after := c.status()
	for _, name := range []string{"backend-1", "backend-2"} {
		b, a := child(before, name), child(after, name)
		if a.Pid == b.Pid || a.State != supervisor.Running || alive(identity(b)) {
			t.Fatalf("%s: pid %d before, %+v after", name, b.Pid, a)
		}
	}
	if child(after, "lb").Pid != child(before, "lb").Pid {
		t.Fatal("restart of the backends replaced the LB")
	}

	// Deploy: a new build at the same path, then restart: the backends run
	// the new file, the LB (not restarted) still the old one.
	fresh := install(t, exe)
	l = startLoad(t, c)
	_, took = c.ctl("restart")
	l.check(t, "restart after a new build", took)
	st := c.status()
	for _, name := range []string{"backend-1", "backend-2"} {
		if pid := child(st, name).Pid; !runs(pid, fresh) {
			t.Fatalf("%s (pid %d) does not run the new binary", name, pid)
		}
	}
	if runs(child(st, "lb").Pid, fresh) {
		t.Fatal("the LB runs the new binary without a restart")
	}
	// One by name.
	_, _ = c.ctl("restart", "backend-2")
	if st2 := c.status(); child(st2, "backend-1").Pid != child(st, "backend-1").Pid || child(st2, "backend-2").Pid == child(st, "backend-2").Pid {
		t.Fatalf("restart backend-2 changed %+v to %+v", st.Children, st2.Children)
	}
}

func TestRestartLBUnderLoad(t *testing.T) {
	c := newCluster(t)
	exe := ownBinary(t, c)
	c.up(startLimit, "--grace", "5s")
	fresh := install(t, exe)
	old := child(c.status(), "lb")

	l := startLoad(t, c)
	out, took := c.ctl("restart", "lb")
	_, took2 := c.ctl("restart", "lb")
	l.check(t, "two restarts of the LB", took+took2)
	lb := child(c.status(), "lb")
	if lb.Pid == old.Pid || alive(identity(old)) || lb.State != supervisor.Running || lb.Restarts != 0 {
		t.Fatalf("lb %+v after restart (old %d alive %v)\n%s", lb, old.Pid, alive(identity(old)), out)
	}
	if !runs(lb.Pid, fresh) {
		t.Fatalf("the new LB (pid %d) does not run the new binary", lb.Pid)
	}
	// The LB answering is the new one.
	code, body := call(t, noRetryClient(), "GET", fmt.Sprintf("http://127.0.0.1:%d/health", c.health), "", nil)
	var h struct{ Pid int }
	if err := json.Unmarshal([]byte(body), &h); code != 200 || err != nil || h.Pid != lb.Pid {
		t.Fatalf("/health: %d %v %s, want pid %d", code, err, body, lb.Pid)
	}
}

func TestScaleUnderLoad(t *testing.T) {
	c := newCluster(t)
	c.up(startLimit, "--grace", "5s")

	l := startLoad(t, c)
	out, took := c.ctl("scale", "4")
	l.check(t, "scale 2 to 4", took)
	st := c.status()
	if len(st.Children) != 5 {
		t.Fatalf("after scale 4: %+v\n%s", st.Children, out)
	}
	for _, name := range []string{"backend-3", "backend-4"} {
		ch := child(st, name)
		if ch.State != supervisor.Running || ch.Health != "healthy" || ch.Port <= c.basePort+1 {
			t.Fatalf("%s: %+v", name, ch)
		}
	}
	if n := backendsInHealth(t, c); n != 4 {
		t.Fatalf("/health lists %d backends, want 4", n)
	}
	// The LB knows them by the names status gives them.
	body := healthBody(t, c)
	for _, name := range []string{"backend-1", "backend-2", "backend-3", "backend-4"} {
		if !strings.Contains(body, fmt.Sprintf(`"name": %q`, name)) {
			t.Fatalf("/health lacks %s: %s", name, body)
		}
	}
	removed := []supervisor.Identity{identity(child(st, "backend-2")), identity(child(st, "backend-3")), identity(child(st, "backend-4"))}

	l = startLoad(t, c)
	_, took = c.ctl("scale", "1")
	l.check(t, "scale 4 to 1", took)
	st = c.status()
	if len(st.Children) != 2 || child(st, "backend-1").State != supervisor.Running {
		t.Fatalf("after scale 1: %+v", st.Children)
	}
	for _, id := range removed {
		if alive(id) {
			t.Fatalf("removed backend pid %d still runs", id.Pid)
		}
	}
	clitest.Eventually(t, 10*time.Second, func() error {
		if n := backendsInHealth(t, c); n != 1 {
			return fmt.Errorf("/health lists %d backends, want 1", n)
		}
		return nil
	})
}

func backendsInHealth(t *testing.T, c *cluster) int {
	t.Helper()
	return strings.Count(healthBody(t, c), `"address"`)
}

func healthBody(t *testing.T, c *cluster) string {
	t.Helper()
	_, body := call(t, noRetryClient(), "GET", fmt.Sprintf("http://127.0.0.1:%d/health", c.health), "", nil)
	return body
}

func TestRestartScaleBadInput(t *testing.T) {
	c := newCluster(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"restart"}, 3, "no cluster is running"},
		{[]string{"scale", "3"}, 3, "no cluster is running"},
		{[]string{"scale"}, 2, "exactly one argument"},
		{[]string{"scale", "many"}, 2, "invalid N"},
		{[]string{"scale", "--grace", "-1s", "2"}, 2, "--grace"},
		{[]string{"restart", "a", "b"}, 2, "at most one NAME"},
		{[]string{"logs"}, 3, "no cluster is running and no logs"},
	} {
		out, errOut, code := c.run(10*time.Second, append(tc.args[:1:1], append([]string{"--run-dir", c.runDir}, tc.args[1:]...)...)...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%v: exit %d %s%s, want %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
	c.up(startLimit)
	before := c.status()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"restart", "backend-9"}, 1, `no child called "backend-9" (children: backend-1, backend-2, lb)`},
		{[]string{"scale", "0"}, 1, "want 1 to 64"},
		{[]string{"scale", "65"}, 1, "want 1 to 64"},
		{[]string{"logs", "backend-9"}, 1, `no log for "backend-9"`},
	} {
		out, errOut, code := c.run(10*time.Second, append(tc.args[:1:1], append([]string{"--run-dir", c.runDir}, tc.args[1:]...)...)...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%v: exit %d %s%s, want %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
	after := c.status()
	for i := range before.Children {
		if before.Children[i].Pid != after.Children[i].Pid || len(after.Children) != len(before.Children) {
			t.Fatalf("bad input changed the cluster: %+v then %+v", before.Children, after.Children)
		}
	}
}

func TestLogs(t *testing.T) {
	c := newCluster(t)
	c.up(startLimit)
	// The LB batches its log lines (at most 100 ms late).
	clitest.Eventually(t, 10*time.Second, func() error {
		out, _ := c.ctl("logs")
		for _, want := range []string{"backend-1  | ", "backend-2  | ", "lb         | ", "backend listening", "load balancer ready"} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("logs lack %q:\n%s", want, out)
			}
		}
		return nil
	})
	out, _ := c.ctl("logs", "-n", "1", "backend-2")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "backend-2  | ") {
		t.Fatalf("logs -n 1 backend-2:\n%s", out)
	}

	// A cluster in the foreground has no log files to show.
	fg := newCluster(t)
	startForeground(t, fg)
	if out, errOut, code := fg.run(10*time.Second, "logs", "--run-dir", fg.runDir); code != 1 || !strings.Contains(out+errOut, "runs in the foreground") {
		t.Fatalf("logs of a foreground cluster: exit %d %s%s", code, out, errOut)
	}

	// -f follows: a request through the LB shows up as new access lines,
	// and Ctrl+C ends it with exit 0.
	p := clitest.StartCmd(t, c.cmd("logs", "--run-dir", c.runDir, "-f", "-n", "0"))
	marker := fmt.Sprintf("/api/follow-%d", time.Now().UnixNano())
	clitest.Eventually(t, 10*time.Second, func() error {
		call(t, noRetryClient(), "GET", c.url(marker), "", nil)
		if !strings.Contains(p.Output(), marker) {
			return errors.New("request not in the followed logs yet")
		}
		return nil
	})
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("logs -f after Ctrl+C: exit %d\n%s", code, p.Output())
	}
}
