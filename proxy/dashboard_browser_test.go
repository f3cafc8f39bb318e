package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
// at 1280×800, e.g. POSTERCTL_DASHBOARD_SCREENSHOT=$PWD/docs/dashboard.png;
// dashboardWideScreenshotEnv one at 1920×1080, to look at.
const (
	dashboardScreenshotEnv     = "POSTERCTL_DASHBOARD_SCREENSHOT"
	dashboardWideScreenshotEnv = "POSTERCTL_DASHBOARD_SCREENSHOT_WIDE"
)

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
		return clitest.GetOK(c, fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
	})
	return p
}

// TestDashboardBrowser opens the dashboard in headless chromium in front of
// two real backends and a real balancer, with a little traffic flowing: it
// must list both by the names the supervisor gives them, show 5-second
// averages, scale its axis in round numbers and leave no panel empty; a
// SIGKILLed backend must show as down within 2 s, and as healthy again once
// a new process serves on its port.
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
	// The admin API needs the token `up` would make in the run dir.
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte(testAdminToken), 0o600); err != nil {
		t.Fatal(err)
	}
	lb := clitest.Start(t, posterctlBin, "--log-format", "json", "lb", "--host", "127.0.0.1",
		"--port", strconv.Itoa(lbPort), "--health-port", strconv.Itoa(healthPort),
		"--admin-token-file", tokenFile,
		// As the cluster plan passes them: NAME=ADDR.
		"--backend", "backend-1="+addrs[0], "--backend", "backend-2="+addrs[1])
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

	ctx, _ := clitest.Browser(t, 150*time.Second, 1280, 800)

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

	do("open dashboard", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(dashURL), chromedp.WaitReady(chromedp.CSS(`body[data-ready="true"]`)))
	for _, a := range addrs {
		waitFor("see "+a+" healthy", stateIs(a, "healthy"), 10*time.Second)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(".card").length`)); err != nil || n != 2 {
		t.Fatalf("%d backend cards (err %v), want 2", n, err)
	}
	// Names first, addresses second, on the cards and in the legend.
	for i, a := range addrs {
		name := fmt.Sprintf("backend-%d", i+1)
		card, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](fmt.Sprintf(
			`[...document.querySelectorAll('.card[data-backend=%q] .addr span')].filter(s => !s.hidden && s.offsetWidth > 0).map(s => s.textContent)`, a)))
		if err != nil || len(card) != 2 || card[0] != name || card[1] != a {
			t.Fatalf("card of %s reads %q (err %v), want %q then %q", a, card, err, name, a)
		}
	}
	if legend, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("legend").textContent`)); err != nil || !strings.Contains(legend, "backend-1") || !strings.Contains(legend, "backend-2") {
		t.Fatalf("legend %q (err %v)", legend, err)
	}
	// Let the graphs gather a few seconds of traffic first: more than the
	// five the big numbers average.
	waitFor("traffic on the graph", `Number(document.body.dataset.samples) >= 7`, 20*time.Second)
	checkAverages(t, ctx)
	checkAxis(t, ctx)

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
		fmt.Sprintf(`(() => { const k = [...document.querySelectorAll('#events li')].filter(li => li.dataset.backend === %q).map(li => li.dataset.kind); return k[0] === "up" && k.includes("down"); })()`, addrs[0]),
		5*time.Second)
	// The history names backends as the cards do, the address after it.
	if what, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#events li').textContent`)); err != nil ||
		!strings.Contains(what, "backend-1") || !strings.Contains(what, addrs[0]) {
		t.Fatalf("newest event reads %q (err %v), want backend-1 and %s", what, err, addrs[0])
	}
	// A drain and an enable through the admin API, as `restart` does them:
	// the card and the history follow, by name.
	admin := lbapi.NewClient(fmt.Sprintf("http://127.0.0.1:%d", healthPort), 5*time.Second, lbapi.WithToken(testAdminToken))
	defer admin.Close()
	if err := admin.Drain(context.Background(), addrs[1]); err != nil {
		t.Fatal(err)
	}
	waitFor("see backend-2 draining", stateIs(addrs[1], "draining"), 3*time.Second)
	if err := admin.Enable(context.Background(), addrs[1]); err != nil {
		t.Fatal(err)
	}
	waitFor("see backend-2 back", stateIs(addrs[1], "healthy"), 3*time.Second)
	waitFor("history shows backend-2 drained and enabled",
		fmt.Sprintf(`(() => { const k = [...document.querySelectorAll('#events li')].filter(li => li.dataset.backend === %q && li.textContent.includes("backend-2")).map(li => li.dataset.kind); return k[0] === "enabled" && k[1] === "draining"; })()`, addrs[1]),
		3*time.Second)
	checkNoEmptyPanel(t, ctx, "1280x800")

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

	path, wide := os.Getenv(dashboardScreenshotEnv), os.Getenv(dashboardWideScreenshotEnv)
	if path != "" || wide != "" {
		// A fuller minute of graph for the README picture.
		waitFor("a fuller graph", `Number(document.body.dataset.samples) >= 45`, 75*time.Second)
	}
	screenshot := func(path string) {
		t.Helper()
		if path == "" {
			return
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot saved to %s", path)
	}
	screenshot(path)
	// A large screen: the panels still fill their space.
	do("resize to 1920x1080", chromedp.EmulateViewport(1920, 1080))
	waitFor("a redraw at 1920x1080", `document.documentElement.clientWidth === 1920`, 5*time.Second)
	checkNoEmptyPanel(t, ctx, "1920x1080")
	screenshot(wide)
	stopLoad()
	load.Wait()
	t.Logf("%d requests sent through the balancer during the test", sent.Load())
}

// checkAverages: the big numbers are the mean of the last five samples of
// the series their sparkline draws, computed here again from the very
// answer the page drew; under load the throughput is not zero.
func checkAverages(t *testing.T, ctx context.Context) {
	t.Helper()
	type shown struct {
		Stats json.RawMessage `json:"stats"`
		Total string          `json:"total"`
		Text  string          `json:"text"`
		Card  string          `json:"card"`
	}
	// One evaluation, so the numbers and the answer they came from are of
	// the same redraw.
	got, err := chromedp.Run(ctx, chromedp.Evaluate[shown](`({stats: lastStats,
		total: document.getElementById("k-rps").dataset.value,
		text: document.getElementById("k-rps").textContent,
		card: document.querySelector('.card[data-name="backend-2"] .stat b').dataset.value})`))
	if err != nil {
		t.Fatal(err)
	}
	var st lbapi.Stats
	if err := json.Unmarshal(got.Stats, &st); err != nil {
		t.Fatal(err)
	}
	mean := func(s []lbapi.Sample) float64 {
		s = s[max(0, len(s)-5):]
		var sum float64
		for _, x := range s {
			sum += x.RPS
		}
		return sum / float64(len(s))
	}
	near := func(shown string, want float64) bool {
		v, err := strconv.ParseFloat(shown, 64)
		return err == nil && math.Abs(v-want) <= 1e-9*math.Max(1, want)
	}
	want := mean(st.Total)
	if !near(got.Total, want) || want <= 0 || got.Text == "0" || got.Text == "–" {
		t.Fatalf("throughput shows %q (%s), want the mean of the last 5 samples %v > 0; samples %+v", got.Text, got.Total, want, st.Total)
	}
	var b2 *lbapi.DashboardBackend
	for i := range st.Backends {
		if st.Backends[i].Name == "backend-2" {
			b2 = &st.Backends[i]
		}
	}
	if b2 == nil || !near(got.Card, mean(b2.Samples)) {
		t.Fatalf("backend-2's card shows %s req/s, want the mean of its last 5 samples (%+v)", got.Card, b2)
	}
	t.Logf("throughput over the last 5 s: %s req/s (shown %q)", got.Total, got.Text)
}

// checkAxis: the chart's scale reads in round steps, 1, 2 or 5 times a
// power of ten, each label a whole number of steps.
func checkAxis(t *testing.T, ctx context.Context) {
	t.Helper()
	labels, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#ylabels span")].map(s => s.dataset.value)`))
	if err != nil || len(labels) < 2 {
		t.Fatalf("axis labels %q (err %v)", labels, err)
	}
	var vals []float64
	for _, l := range labels {
		v, err := strconv.ParseFloat(strings.TrimSuffix(l, "k"), 64)
		if strings.HasSuffix(l, "k") {
			v *= 1000
		}
		if err != nil || v <= 0 {
			t.Fatalf("axis label %q is not a number", l)
		}
		vals = append(vals, v)
	}
	step := vals[len(vals)-1] // the lowest grid line
	mant := step / math.Pow(10, math.Floor(math.Log10(step)))
	if math.Abs(mant-1) > 1e-9 && math.Abs(mant-2) > 1e-9 && math.Abs(mant-5) > 1e-9 {
		t.Fatalf("axis step %v is not 1, 2 or 5 times a power of ten (labels %q)", step, labels)
	}
	for i, v := range vals {
		if n := v / step; math.Abs(n-math.Round(n)) > 1e-9 || int(math.Round(n)) != len(vals)-i {
			t.Fatalf("axis labels %q are not the multiples of %v, top first", labels, step)
		}
	}
	t.Logf("axis labels %q", labels)
}

// checkNoEmptyPanel: the state changes panel ends where the column beside
// it ends, so neither leaves a gap, and every panel shows something.
func checkNoEmptyPanel(t *testing.T, ctx context.Context, size string) {
	t.Helper()
	type layout struct {
		Aside, Main float64
		Empty       []string
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[layout](`(() => {
		const r = s => document.querySelector(s).getBoundingClientRect();
		const empty = [...document.querySelectorAll(".panel, .kpi, .card")]
			.filter(p => p.innerText.trim() === "" || p.getBoundingClientRect().height < 40)
			.map(p => p.className);
		return {aside: r("aside.events").bottom, main: r(".col-main").bottom, empty};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got.Aside-got.Main) > 1 || len(got.Empty) > 0 {
		t.Fatalf("at %s: state changes end at %vpx, the main column at %vpx; empty panels %q", size, got.Aside, got.Main, got.Empty)
	}
}

// tail is the end of a long process output, enough to explain a failure.
func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}
