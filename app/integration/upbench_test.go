package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v3/process"

	"github.com/posterctl/posterctl/internal/clitest"
)

// upBenchPosts is the number of posts in the store before the load: the
// list answers 50, so it is full.
const upBenchPosts = 50

// wrkPath is where the distribution installs wrk (apt-get install wrk).
const wrkPath = "/usr/bin/wrk"

// BenchmarkUp measures the app as deployed: `posterctl up` with two
// backends and the default logging (the supervisor relays every child's
// line to its stdout, a file here), on free ports in a temporary run
// directory, with 50 posts in the store. wrk -t1 -c64 drives, for about b.N
// seconds each, GET /api/posts, POST /api/posts with a session cookie, and
// 9 GETs to 1 POST; it reports req/s, p99, failed requests, "database is
// locked" lines in the log, and the CPU per request of the supervisor, the
// LB and the backends, read from /proc. With a baseline cluster
// (POSTERCTL_BENCH_BASELINE_BIN), the two take turns: each runs a load in
// two halves, in the order A B B A, and the next round B A A B.
//
//	go test -run '^$' -bench Up -benchtime 5x ./app/integration/
func BenchmarkUp(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("SKIPPED: reads CPU time from /proc (Linux only)")
	}
	if _, err := os.Stat(wrkPath); err != nil {
		b.Skip("SKIPPED: wrk is not installed (apt-get install wrk)")
	}
	clusters := []*upCluster{startUpCluster(b, "new", bin)}
	if base := os.Getenv(BaselineEnv); base != "" {
		clusters = append(clusters, startUpCluster(b, "base", base))
	}
	body := `{"content":"a benchmark post of moderate length, like most posts are"}`
	post := func(cookie string) string {
		return fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = %q\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Cookie\"] = %q\n", body, cookie)
	}
	mix := func(cookie string) string {
		return fmt.Sprintf(`local n = 0
local hdr = {["Content-Type"] = "application/json", ["Cookie"] = %q}
request = function()
	n = n + 1
	if n %% 10 == 0 then
		return wrk.format("POST", "/api/posts", hdr, %q)
	end
	return wrk.format("GET", "/api/posts")
end
`, cookie, body)
	}
	var sum strings.Builder
	lead := 0 // the cluster that runs first in the next round
	fmt.Fprintf(&sum, "posterctl up, 2 backends, default logging, wrk -t1 -c64, %d posts in the store:\n", upBenchPosts)
	for _, ep := range []struct {
		name, path string
		script     func(cookie string) string // nil: plain GETs
	}{
		{"GET_posts", "/api/posts", nil},
		{"POST_posts", "/api/posts", post},
		{"mixed_9GET_1POST", "/api/posts", mix},
	} {
		var last string // the final round's lines, once
		b.Run(ep.name, func(b *testing.B) {
			// Each cluster runs the load twice, in the order A B B A,
			// half of b.N seconds each (rounded up), so that neither
			// always runs first or right after the other's load. The
			// next round (b.Run calls this again, and the next load
			// follows) goes B A A B: a cluster that ran the last half
			// of a round does not run the first of the next, right
			// after its own load. When it did, the cluster in that
			// place had the worse p99 in most runs, whichever build.
			halfSecs := (b.N + 1) / 2
			totals := make([]upLoadTotals, len(clusters))
			for half := range 2 {
				for i := range clusters {
					if half == 1 {
						i = len(clusters) - 1 - i
					}
					k := (i + lead) % len(clusters)
					lua := ""
					if ep.script != nil {
						lua = ep.script(clusters[k].cookie)
					}
					totals[k].add(runUpLoad(b, clusters[k], ep.path, lua, halfSecs))
				}
			}
			lead = (lead + 1) % len(clusters)
			last = ""
			for k, cl := range clusters {
				name, unit := ep.name, ""
				if len(clusters) > 1 {
					name, unit = name+"/"+cl.name, cl.name+"-"
				}
				t := totals[k]
				b.ReportMetric(t.rps(), unit+"req/s")
				b.ReportMetric(float64(t.p99.Microseconds()), unit+"p99-µs")
				b.ReportMetric(float64(t.errors), unit+"errors")
				b.ReportMetric(float64(t.locked), unit+"db-locked-lines")
				for i, n := range upProcNames {
					b.ReportMetric(t.cpuPerReq(i), unit+n+"-cpu-µs/req")
				}
				last += fmt.Sprintf("  %-22s %7.0f req/s  p99 %7.1f ms  errors %d  db-locked lines %d  cpu µs/req: supervisor %.1f  lb %.1f  backends %.1f\n",
					name, t.rps(), float64(t.p99.Microseconds())/1000, t.errors, t.locked, t.cpuPerReq(0), t.cpuPerReq(1), t.cpuPerReq(2))
			}
		})
		sum.WriteString(last)
	}
	fmt.Print(sum.String())
}

// upLoad is what one wrk run of a load against a cluster measured.
type upLoad struct {
	wrk    wrkReport
	secs   float64         // how long the requests took, from wrk's count and rate
	cpu    []time.Duration // CPU of each of upProcNames over the run
	locked int64           // "database is locked" lines the run added to the log
}

// runUpLoad runs wrk for secs seconds against cl's path, with the Lua
// script lua when it is not empty.
func runUpLoad(b *testing.B, cl *upCluster, path, lua string, secs int) upLoad {
	b.Helper()
	args := []string{"-t1", "-c64", "-d", strconv.Itoa(secs) + "s", "--latency", "--timeout", "10s"}
	if lua != "" {
		f := filepath.Join(b.TempDir(), "load.lua")
		if err := os.WriteFile(f, []byte(lua), 0o600); err != nil {
			b.Fatal(err)
		}
		args = append(args, "-s", f)
	}
	cpu0 := cl.procs.cpu(b)
	locked0 := countInFile(b, cl.out, "database is locked")
	w := exec.Command(wrkPath, append(args, cl.url+path)...)
	var wout bytes.Buffer
	w.Stdout, w.Stderr = &wout, &wout
	if err := w.Run(); err != nil {
		b.Fatalf("wrk: %v\n%s", err, wout.String())
	}
	cpu1 := cl.procs.cpu(b)
	r, err := parseWrkReport(wout.String())
	if err != nil {
		log, _ := os.ReadFile(cl.out)
		b.Fatalf("wrk: %v\n%s\nthe cluster's last output:\n%s", err, wout.String(), log[max(0, len(log)-8<<10):])
	}
	l := upLoad{wrk: r, secs: float64(r.requests) / r.rps, locked: int64(countInFile(b, cl.out, "database is locked") - locked0)}
	for i := range cpu1 {
		l.cpu = append(l.cpu, cpu1[i]-cpu0[i])
	}
	return l
}

// upLoadTotals adds up a cluster's runs of one load.
type upLoadTotals struct {
	requests, errors, locked int64
	secs                     float64
	p99                      time.Duration // the worst run's: a stall in one run is not averaged away
	cpu                      []time.Duration
}

func (t *upLoadTotals) add(l upLoad) {
	t.requests += l.wrk.requests
	t.errors += l.wrk.errors
	t.locked += l.locked
	t.secs += l.secs
	t.p99 = max(t.p99, l.wrk.p99)
	if t.cpu == nil {
		t.cpu = make([]time.Duration, len(l.cpu))
	}
	for i, c := range l.cpu {
		t.cpu[i] += c
	}
}

func (t *upLoadTotals) rps() float64 { return float64(t.requests) / max(t.secs, 1e-9) }

// cpuPerReq is the CPU µs per request of upProcNames[i].
func (t *upLoadTotals) cpuPerReq(i int) float64 {
	return float64(t.cpu[i]) / float64(time.Microsecond) / float64(max(1, t.requests))
}

// upCluster is one running `posterctl up` with a logged-in user.
type upCluster struct {
	name   string
	url    string
	cookie string
	out    string // the supervisor's stdout and stderr
	procs  upProcs
}

// startUpCluster runs `posterctl up` from binPath with two backends on free
// ports, seeds the store, and stops the cluster gracefully at cleanup.
func startUpCluster(b *testing.B, name, binPath string) *upCluster {
	dir := b.TempDir()
	runDir := filepath.Join(dir, "run")
	if err := os.Mkdir(runDir, 0o700); err != nil {
		b.Fatal(err)
	}
	port, health, base := clitest.FreePort(b), clitest.FreePort(b), freePortPair(b)
	out, err := os.Create(filepath.Join(dir, "up.out"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(binPath, "up", "--backends", "2", "--port", strconv.Itoa(port), "--health-port", strconv.Itoa(health),
		"--base-port", strconv.Itoa(base), "--listen", "127.0.0.1", "--data-dir", filepath.Join(dir, "data"),
		"--run-dir", runDir, "--grace", "5s")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	b.Cleanup(func() {
		// A graceful stop, as Ctrl+C; the group is killed if it hangs.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		out.Close()
	})
	lbURL := "http://127.0.0.1:" + strconv.Itoa(port)
	hc := newHTTPClient(4)
	b.Cleanup(hc.CloseIdleConnections)
	clitest.Eventually(b, 60*time.Second, func() error {
		select {
		case <-done:
			o, _ := os.ReadFile(out.Name())
			b.Fatalf("up exited: %s", o)
		default:
		}
		resp, err := hc.Get(lbURL + "/api/posts")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	c := &client{tb: b, hc: hc}
	c.registerAndLogin(lbURL, "bench_user", "bench-password")
	for i := range upBenchPosts {
		c.must("POST", lbURL+"/api/posts", map[string]string{"content": fmt.Sprint("seed post number ", i)}, http.StatusCreated)
	}

	return &upCluster{name: name, url: lbURL, cookie: c.cookie, out: out.Name(), procs: upProcesses(b, int32(cmd.Process.Pid))}
}

// upProcNames are the groups upProcs measures, in order.
var upProcNames = []string{"supervisor", "lb", "backends"}

// upProcs is the supervisor and its children by role.
type upProcs struct {
	sup      int
	lb       int
	backends []int
}

// upProcesses finds the LB and the two backends among the supervisor's
// children by their command lines.
func upProcesses(tb testing.TB, sup int32) upProcs {
	tb.Helper()
	ps := upProcs{sup: int(sup)}
	p, err := process.NewProcess(sup)
	if err != nil {
		tb.Fatal(err)
	}
	kids, err := p.Children()
	if err != nil {
		tb.Fatal(err)
	}
	for _, k := range kids {
		args, err := k.CmdlineSlice()
		if err != nil || len(args) < 2 {
			continue
		}
		switch args[1] {
		case "lb":
			ps.lb = int(k.Pid)
		case "backend":
			ps.backends = append(ps.backends, int(k.Pid))
		}
	}
	if ps.lb == 0 || len(ps.backends) != 2 {
		tb.Fatalf("children of up: lb %d, backends %v", ps.lb, ps.backends)
	}
	return ps
}

// cpu is the CPU time so far of the supervisor, the LB and the backends.
func (ps upProcs) cpu(tb testing.TB) [3]time.Duration {
	tb.Helper()
	var t [3]time.Duration
	for i, pids := range [][]int{{ps.sup}, {ps.lb}, ps.backends} {
		for _, pid := range pids {
			d, err := procCPU(pid)
			if err != nil {
				tb.Fatal(err)
			}
			t[i] += d
		}
	}
	return t
}

// freePortPair is a port that, like the one after it, was free a moment
// ago: up gives the backends consecutive ports from --base-port.
func freePortPair(tb testing.TB) int {
	tb.Helper()
	for range 50 {
		p := clitest.FreePort(tb)
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1)); err == nil {
			l.Close()
			return p
		}
	}
	tb.Fatal("no two consecutive free ports")
	return 0
}

// countInFile counts the lines of path that hold s.
func countInFile(tb testing.TB, path, s string) int {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.Count(b, []byte(s))
}

// wrkReport is what a wrk --latency run printed.
type wrkReport struct {
	requests int64
	rps      float64
	p99      time.Duration
	errors   int64 // socket errors and non-2xx answers
}

func parseWrkReport(out string) (wrkReport, error) {
	var r wrkReport
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "99%":
			r.p99, _ = time.ParseDuration(f[1])
		case len(f) >= 5 && f[1] == "requests" && f[2] == "in":
			r.requests, _ = strconv.ParseInt(f[0], 10, 64)
		case len(f) == 2 && f[0] == "Requests/sec:":
			r.rps, _ = strconv.ParseFloat(f[1], 64)
		case len(f) > 0 && f[0] == "Non-2xx":
			n, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
			r.errors += n
		case len(f) > 1 && f[0] == "Socket" && f[1] == "errors:":
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 2; i+1 < len(f); i += 2 {
				n, _ := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				r.errors += n
			}
		}
	}
	if r.requests == 0 || r.p99 == 0 {
		return r, fmt.Errorf("no figures in wrk's report")
	}
	return r, nil
}
