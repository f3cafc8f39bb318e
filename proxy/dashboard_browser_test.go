package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/posterctl/posterctl/lbapi"
)

// dashboardScreenshotEnv names a file to save a picture of the dashboard to,
// e.g. POSTERCTL_DASHBOARD_SCREENSHOT=$PWD/docs/dashboard.png.
const dashboardScreenshotEnv = "POSTERCTL_DASHBOARD_SCREENSHOT"

// startPosterBackend runs `posterctl backend` on port and waits for /healthz.
func startPosterBackend(t *testing.T, port int, db, name string) *clitest.Process {
	t.Helper()
	p := clitest.Start(t, posterctlBin, "--log-format", "json", "backend", "--port", strconv.Itoa(port), "--db", db, "--name", name)
	c := &http.Client{Timeout: time.Second}
	defer c.CloseIdleConnections()
	clitest.Eventually(t, 30*time.Second, func() error {
		select {
		case <-p.Done():
			t.Fatalf("%s exited: %s", name, p.Output())
		default:
		}
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("healthz %d", resp.StatusCode)
		}
		return nil
	})
	return p
}

// TestDashboardBrowser opens the dashboard in headless chromium in front of
// two real backends and a real balancer, with a little traffic flowing: it
// must list both; a SIGKILLed backend must show as down within 2 s, and as
// healthy again once a new process serves on its port.
func TestDashboardBrowser(t *testing.T) {
	clitest.RequireChromium(t)
	db := filepath.Join(t.TempDir(), "poster.db")
	ports := []int{clitest.FreePort(t), clitest.FreePort(t)}
	addrs := []string{fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])}
	backends := []*clitest.Process{
		startPosterBackend(t, ports[0], db, "backend-1"),
		startPosterBackend(t, ports[1], db, "backend-2"),
	}
	lbPort, healthPort := clitest.FreePort(t), clitest.FreePort(t)
	lb := clitest.Start(t, posterctlBin, "--log-format", "json", "lb", "--host", "127.0.0.1",
		"--port", strconv.Itoa(lbPort), "--health-port", strconv.Itoa(healthPort),
		"--backend", addrs[0], "--backend", addrs[1])
	dashURL := fmt.Sprintf("http://127.0.0.1:%d/", healthPort)
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	clitest.Eventually(t, 30*time.Second, func() error {
		select {
		case <-lb.Done():
			t.Fatalf("lb exited: %s", lb.Output())
		default:
		}
		resp, err := hc.Get(dashURL + "health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("health %d", resp.StatusCode)
		}
		return nil
	})

	// A small steady load, bounded in count and time, so the graphs move
	// and a killed backend is noticed by the request path too.
	var sent atomic.Int64
	loadCtx, stopLoad := context.WithTimeout(context.Background(), 120*time.Second)
	var load sync.WaitGroup
	defer func() { stopLoad(); load.Wait() }()
	for w := range 3 {
		load.Go(func() {
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			tick := time.NewTicker(time.Duration(8+w*3) * time.Millisecond)
			defer tick.Stop()
			for range 20000 {
				select {
				case <-loadCtx.Done():
					return
				case <-tick.C:
				}
				resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/api/posts?limit=5", lbPort))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				sent.Add(1)
			}
		})
	}

	ctx, _ := clitest.Browser(t, 150*time.Second, 1440, 1000)

	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v\nlb output:\n%s", step, err, tail(lb.Output()))
		}
	}
	stateIs := func(addr, state string) string {
		return fmt.Sprintf(`(document.querySelector('.card[data-backend=%q]') || {dataset: {}}).dataset.state === %q`, addr, state)
	}
	waitFor := func(step, expr string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(within))); err != nil {
			t.Fatalf("%s: not within %v (%v)\nlb output:\n%s", step, within, err, tail(lb.Output()))
		}
		return time.Since(start)
	}

	do("open dashboard", chromedp.Navigate(dashURL), chromedp.WaitReady(chromedp.CSS(`body[data-ready="true"]`)))
	for _, a := range addrs {
		waitFor("see "+a+" healthy", stateIs(a, "healthy"), 10*time.Second)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(".card").length`)); err != nil || n != 2 {
		t.Fatalf("%d backend cards (err %v), want 2", n, err)
	}
	// Let the graphs gather a few seconds of traffic first.
	waitFor("traffic on the graph", `Number(document.body.dataset.samples) >= 3`, 15*time.Second)

	// SIGKILL backend-1 by pid: the page must say so within 2 s.
	killed := backends[0].Pid()
	if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-backends[0].Done()
	took := waitFor("see the killed backend down", stateIs(addrs[0], "down"), 2*time.Second)
	t.Logf("killed backend-1 (pid %d) shown down after %v", killed, took.Round(time.Millisecond))
	waitFor("other backend still healthy", stateIs(addrs[1], "healthy"), time.Second)

	// A new process on the same port: healthy again.
	backends[0] = startPosterBackend(t, ports[0], db, "backend-1")
	took = waitFor("see the restarted backend healthy", stateIs(addrs[0], "healthy"), 10*time.Second)
	t.Logf("restarted backend-1 (pid %d) shown healthy after %v", backends[0].Pid(), took.Round(time.Millisecond))
	// The history tells the story, newest first, with a timestamp each.
	waitFor("history shows down then up",
		fmt.Sprintf(`(() => { const k = [...document.querySelectorAll('#events li')].filter(li => li.textContent.includes(%q)).map(li => li.dataset.kind); return k[0] === "up" && k.includes("down"); })()`, addrs[0]),
		5*time.Second)

	// User-supplied text is never markup: a backend error with HTML in it
	// would show as text. The page builds its DOM with textContent only, so
	// no element beyond the page's own may appear in the history.
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#events img, #events script, .lasterr *').length`)); err != nil || n != 0 {
		t.Fatalf("%d unexpected elements in server-supplied text (err %v)", n, err)
	}

	// /api/stats is what the page draws from: check it agrees.
	var st lbapi.Stats
	resp, err := hc.Get(dashURL + "api/stats")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.PID != lb.Pid() || len(st.Backends) != 2 || len(st.Total) == 0 {
		t.Fatalf("/api/stats: %+v (%v)", st, err)
	}

	if path := os.Getenv(dashboardScreenshotEnv); path != "" {
		// A fuller minute of graph for the README picture.
		waitFor("a fuller graph", `Number(document.body.dataset.samples) >= 45`, 75*time.Second)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot saved to %s", path)
	}
	stopLoad()
	load.Wait()
	t.Logf("%d requests sent through the balancer during the test", sent.Load())
}

// tail is the end of a long process output, enough to explain a failure.
func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}
