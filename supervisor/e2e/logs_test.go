package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/posterctl/posterctl/supervisor"
)

// get sends n GETs of path over a few keep-alive connections.
func get(t *testing.T, c *cluster, path string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 10 * time.Second}
			defer cl.CloseIdleConnections()
			for i := w; i < n; i += 4 {
				resp, err := cl.Get(c.url(path))
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
}

// Detached logs rotate at the configured size keeping the configured
// number of files; SIGHUP reopens them without stopping the cluster; each
// up starts new files, and `logs` shows the current run unless --all.
func TestDetachedLogs(t *testing.T) {
	c := newCluster(t)
	logDir := filepath.Join(c.runDir, supervisor.LogsDir)
	c.up(60*time.Second, "--log-max-size", "1MiB", "--log-max-files", "1")

	// About 500 bytes of access log per request: 5000 pass 2 MiB.
	get(t, c, "/api/posts", 5000)
	clitest.Eventually(t, 20*time.Second, func() error {
		rotated, _ := filepath.Glob(filepath.Join(logDir, "lb-*.log"))
		if len(rotated) != 1 {
			return fmt.Errorf("%d rotated lb logs, want exactly 1 (--log-max-files 1): %v", len(rotated), rotated)
		}
		return nil
	})
	fi, err := os.Stat(filepath.Join(logDir, "lb.log"))
	if err != nil || fi.Size() > 1<<20 {
		t.Fatalf("current lb log: %v %v", fi, err)
	}

	// logrotate's way: move the file away, then SIGHUP.
	sup := filepath.Join(logDir, "supervisor.log")
	if err := os.Rename(sup, filepath.Join(logDir, "supervisor.log.1")); err != nil {
		t.Fatal(err)
	}
	pid := c.status().Supervisor.Pid
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	clitest.Eventually(t, 10*time.Second, func() error {
		b, err := os.ReadFile(sup)
		if err != nil || !strings.Contains(string(b), "log files reopened") {
			return fmt.Errorf("no new supervisor.log after SIGHUP: %q %v", b, err)
		}
		return nil
	})
	b, _ := os.ReadFile(sup)
	if !regexp.MustCompile(`"time":"[0-9T:-]+\.\d{3}`).Match(b) {
		t.Errorf("log times without milliseconds: %s", b)
	}
	st := c.status()
	if st.Supervisor.Pid != pid || st.Supervisor.Stopping || child(st, "lb").State != supervisor.Running {
		t.Fatalf("the cluster did not go on after SIGHUP: %+v", st)
	}
	// Last, so that it is in the file the next run keeps (--log-max-files 1).
	get(t, c, "/first-run-marker", 10)
	// Children ignore SIGHUP: only the supervisor decides what it means.
	for _, name := range []string{"lb", "backend-1"} {
		if err := syscall.Kill(child(st, name).Pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	get(t, c, "/api/posts", 10)
	after := c.status()
	for _, name := range []string{"lb", "backend-1"} {
		if b, a := child(st, name), child(after, name); a.Pid != b.Pid || a.Restarts != 0 || a.State != supervisor.Running {
			t.Fatalf("%s after SIGHUP: %+v, was %+v", name, a, b)
		}
	}

	// A refused up (the cluster runs) leaves the running cluster's logs be.
	rotatedBefore, _ := filepath.Glob(filepath.Join(logDir, "*-*.log"))
	if _, _, code := c.run(20*time.Second, append([]string{"up", "-d"}, c.flags()...)...); code == 0 {
		t.Fatal("a second up -d was not refused")
	}
	rotatedAfter, _ := filepath.Glob(filepath.Join(logDir, "*-*.log"))
	if len(rotatedAfter) != len(rotatedBefore) {
		t.Fatalf("the refused up rotated logs: %v, was %v", rotatedAfter, rotatedBefore)
	}

	// The next run starts afresh.
	c.ctl("down")
	c.up(60*time.Second, "--log-max-size", "1MiB", "--log-max-files", "1")
	out, _ := c.ctl("logs", "-n", "100000", "lb")
	if strings.Contains(out, "first-run-marker") {
		t.Fatal("logs shows the previous run without --all")
	}
	out, _ = c.ctl("logs", "--all", "-n", "100000", "lb")
	if !strings.Contains(out, "first-run-marker") {
		ls, _ := exec.Command("sh", "-c", "ls -la "+logDir+"; grep -c first-run-marker "+logDir+"/*").CombinedOutput()
		t.Fatalf("logs --all does not show the previous run:\n%s\n%s", ls, out[:min(len(out), 2000)])
	}
}

// In the foreground a SIGHUP is the terminal closing: the cluster stops
// gracefully, as a shell job would.
func TestForegroundHangupStops(t *testing.T) {
	c := newCluster(t)
	p := clitest.StartCmd(t, c.cmd(append([]string{"up"}, c.flags()...)...))
	waitOutput(t, p, 60*time.Second, "cluster ready")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("up after SIGHUP: exit %d\n%s", code, p.Output())
	}
	if !strings.Contains(p.Output(), "every child stopped") {
		t.Fatalf("no graceful stop:\n%s", p.Output())
	}
	if left := c.leftovers(); len(left) > 0 {
		t.Fatalf("%d processes left", len(left))
	}
}
