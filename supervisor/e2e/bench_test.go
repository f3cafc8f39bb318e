package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
)

// BenchmarkStartStop measures, in one run, how long `up -d` takes until the
// cluster is ready against starting the same three processes by hand and
// polling their health (what the supervisor adds: the port check, the
// re-exec of a detached supervisor, the socket), and how long `down` takes
// until everything is gone.
func BenchmarkStartStop(b *testing.B) {
	dir := b.TempDir()
	c := &cluster{
		runDir:  filepath.Join(dir, "run"),
		dataDir: filepath.Join(dir, "data"),
		mark:    fmt.Sprintf("bench-%d", time.Now().UnixNano()),
		port:    clitest.FreePort(b),
		health:  clitest.FreePort(b),
	}
	c.basePort = freePairTB(b)
	// The store exists before the first timed start, as it does on every
	// start but the first in real use.
	raw(b, c)

	var rawTotal, upTotal, downTotal time.Duration
	for b.Loop() {
		rawTotal += raw(b, c)

		begun := time.Now()
		if out, err := c.benchCmd("up", "-d").CombinedOutput(); err != nil {
			b.Fatalf("up -d: %v\n%s", err, out)
		}
		upTotal += time.Since(begun)
		begun = time.Now()
		if out, err := c.benchCmd("down").CombinedOutput(); err != nil {
			b.Fatalf("down: %v\n%s", err, out)
		}
		downTotal += time.Since(begun)
	}
	n := float64(b.N)
	b.ReportMetric(float64(rawTotal.Milliseconds())/n, "raw-start-ms")
	b.ReportMetric(float64(upTotal.Milliseconds())/n, "up-ready-ms")
	b.ReportMetric(float64(downTotal.Milliseconds())/n, "down-ms")
	b.ReportMetric(float64(upTotal)/float64(rawTotal), "up/raw")
}

func (c *cluster) benchCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(bin, append(args, "--run-dir", c.runDir)...)
	if args[0] == "up" {
		cmd.Args = append(cmd.Args, "--data-dir", c.dataDir, "--port", strconv.Itoa(c.port),
			"--health-port", strconv.Itoa(c.health), "--base-port", strconv.Itoa(c.basePort))
	}
	return cmd
}

// raw starts two backends and the LB by hand, as the supervisor would,
// times them to ready, and stops them.
func raw(b *testing.B, c *cluster) time.Duration {
	b.Helper()
	begun := time.Now()
	db := filepath.Join(c.dataDir, "poster.db")
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = syscall.Kill(p.Process.Pid, syscall.SIGKILL)
			_ = p.Wait()
		}
	}()
	start := func(args ...string) {
		cmd := exec.Command(bin, args...)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		procs = append(procs, cmd)
	}
	for i := range 2 {
		start("backend", "--port", strconv.Itoa(c.basePort+i), "--db", db, "--name", fmt.Sprintf("backend-%d", i+1))
	}
	for i := range 2 {
		waitOK(b, fmt.Sprintf("http://127.0.0.1:%d/healthz", c.basePort+i))
	}
	start("lb", "--port", strconv.Itoa(c.port), "--health-port", strconv.Itoa(c.health),
		"--backend", fmt.Sprintf("127.0.0.1:%d", c.basePort), "--backend", fmt.Sprintf("127.0.0.1:%d", c.basePort+1))
	waitOK(b, fmt.Sprintf("http://127.0.0.1:%d/health", c.health))
	return time.Since(begun)
}

func waitOK(b *testing.B, url string) {
	b.Helper()
	cl := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(25 * time.Millisecond) // the supervisor's own poll interval
	defer tick.Stop()
	for {
		if resp, err := cl.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-ctx.Done():
			b.Fatalf("%s not ready", url)
		case <-tick.C:
		}
	}
}

func freePairTB(tb testing.TB) int {
	tb.Helper()
	for range 50 {
		p := clitest.FreePort(tb)
		if portFree(p + 1) {
			return p
		}
	}
	tb.Fatal("no two consecutive free ports")
	return 0
}
