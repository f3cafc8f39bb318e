package proxy

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
)

// BenchmarkLoadBalancer measures, in one run, throughput, latency and CPU per
// request straight to one backend, through `posterctl lb` in front of two, and
// through nginx and HAProxy in front of the same two when they are installed
// (see refbench_test.go), with the same load generator: 64 keep-alive
// connections sending GETs for a small fixed JSON body, then POSTs of a
// 512-byte body. Backends and balancers are separate processes (the backends
// are this test binary re-run as helpers, the balancer is the built posterctl
// binary, logging its access lines to a file as under the supervisor). The
// targets take turns in slices, in a rotating order (sliceOrder), so a
// neighbour's load on this shared machine weighs on all alike; the ratios
// are taken from the same run.
//
// The load generator shares the two cores with everything it measures, so
// its own cost per request is printed too. POSTERCTL_BENCH_LOADGEN=wrk
// switches from the Go generator to wrk (a fixed time per slice) for a
// second opinion; POSTERCTL_BENCH_ACCESSLOG=off turns every balancer's access
// log off, =both runs each balancer twice, with and without ("-nolog"), so
// the log's own cost is read in the same run; POSTERCTL_BENCH_BASELINE_BIN=path
// adds "lb-base", the same balancer from another build;
// POSTERCTL_BENCH_SLICES=n measures n slices rather than ten.
func BenchmarkLoadBalancer(b *testing.B) {
	bin := posterctlBin
	addrA, addrB := deadAddr(b), deadAddr(b)
	helperA := startHelperBackend(b, addrA, "a")
	helperB := startHelperBackend(b, addrB, "b")
	// What the backends spend per request shows whether a balancer makes
	// their work dearer (more headers to parse, more wake-ups).
	backendsCPU := func() float64 {
		return treeCPU(int32(helperA.Cmd.Process.Pid)) + treeCPU(int32(helperB.Cmd.Process.Pid))
	}
	targets := []*benchTarget{{name: "direct", addr: addrA}}
	modes := benchLogModes()
	lbTarget := func(name, bin string, logOn bool) *benchTarget {
		port, hport := clitest.FreePort(b), clitest.FreePort(b)
		args := []string{"--log-format", "json"}
		if !logOn {
			args = append(args, "--log-level", "warn") // access lines are info
		}
		args = append(args, "lb",
			"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--health-port", strconv.Itoa(hport),
			"--backend", addrA, "--backend", "http://"+addrB)
		p := startLBProcess(b, bin, args...)
		return &benchTarget{name: name, addr: "127.0.0.1:" + strconv.Itoa(port), cpu: func() float64 { return treeCPU(int32(p.Pid)) }}
	}
	// A second posterctl binary (say, built from main) measured in the same
	// run shows what a change is worth through the machine's noise.
	base := os.Getenv("POSTERCTL_BENCH_BASELINE_BIN")
	// A balancer's runs with and without its log sit side by side, so
	// each slice measures the pair back to back (see logCostDiffs).
	for _, m := range modes {
		targets = append(targets, lbTarget("lb"+m.suffix, bin, m.on))
	}
	if base != "" {
		for _, m := range modes {
			targets = append(targets, lbTarget("lb-base"+m.suffix, base, m.on))
		}
	}
	for _, ref := range []struct {
		name, bin string
		start     func(*testing.B, bool, ...string) (string, func() float64)
	}{{"nginx", nginxBin, startNginx}, {"haproxy", haproxyBin, startHAProxy}} {
		if _, err := os.Stat(ref.bin); err != nil {
			b.Logf("reference %s skipped: %s not installed", ref.name, ref.bin)
			continue
		}
		for _, m := range modes {
			addr, cpu := ref.start(b, m.on, addrA, addrB)
			targets = append(targets, &benchTarget{name: ref.name + m.suffix, addr: addr, cpu: cpu})
		}
	}
	genName := "go"
	var wrk *wrkGen
	if os.Getenv("POSTERCTL_BENCH_LOADGEN") == "wrk" {
		if _, err := os.Stat(wrkBin); err != nil {
			b.Fatalf("POSTERCTL_BENCH_LOADGEN=wrk: %s not installed", wrkBin)
		}
		wrk, genName = &wrkGen{threads: runtime.NumCPU()}, "wrk"
	}

	for _, kind := range []benchRequest{benchGET(), benchPOST512()} {
		var last string
		b.Run(kind.name+"-64conns", func(b *testing.B) {
			last = runLBSlices(b, targets, kind, wrk, genName, modes, backendsCPU)
		})
		fmt.Println(last) // the final round's figures, once
	}
}

// benchLogMode is one setting of the balancers' access logs, named by the
// suffix its targets carry.
type benchLogMode struct {
	on     bool
	suffix string
}

func benchLogModes() []benchLogMode {
	switch os.Getenv(benchEnvAccessLog) {
	case "off":
		return []benchLogMode{{false, ""}}
	case "both":
		return []benchLogMode{{true, ""}, {false, "-nolog"}}
	}
	return []benchLogMode{{true, ""}}
}

// benchRequest is one kind of request the generators send: req is the whole
// request for the Go generator; method, body and headers the same for wrk.
type benchRequest struct {
	name   string
	req    []byte
	method string
	body   string
}

func benchGET() benchRequest {
	return benchRequest{name: "GET", method: "GET",
		req: []byte("GET /api/posts/1 HTTP/1.1\r\nHost: poster\r\nUser-Agent: posterctl-bench\r\nAccept: application/json\r\n\r\n")}
}

func benchPOST512() benchRequest {
	body := `{"content":"` + strings.Repeat("x", 512-len(`{"content":""}`)) + `"}`
	return benchRequest{name: "POST512", method: "POST", body: body,
		req: []byte("POST /api/posts HTTP/1.1\r\nHost: poster\r\nUser-Agent: posterctl-bench\r\nAccept: application/json\r\n" +
			"Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)}
}

// runLBSlices runs every target in turn, in rotating slices (benchSlices),
// and returns the summary it also reports as metrics.
func runLBSlices(b *testing.B, targets []*benchTarget, kind benchRequest, wrk *wrkGen, genName string,
	modes []benchLogMode, backendsCPU func() float64) string {
	slices := benchSlices(b)
	res := make([]loadResult, len(targets))
	per := max(1, b.N/slices)
	for s := range slices {
		for _, k := range sliceOrder(targets, s) {
			t := targets[k]
			cpu0 := 0.0
			if t.cpu != nil {
				cpu0 = t.cpu()
			}
			be0 := backendsCPU()
			var r loadResult
			if wrk != nil {
				// wrk runs for a time, not a count: b.N seconds a
				// slice, so the run grows with b.N like the Go one.
				r = wrk.run(b, t.addr, kind, time.Duration(b.N)*time.Second)
			} else {
				r = runLoad(b, t.addr, kind.req, per)
			}
			if t.cpu != nil {
				r.cpu = t.cpu() - cpu0
			}
			r.backendCPU = backendsCPU() - be0
			res[k].add(r)
		}
	}
	var sb strings.Builder
	logs := make([]string, len(modes))
	for i, m := range modes {
		logs[i] = map[bool]string{true: "on", false: "off"}[m.on] + map[bool]string{true: " (" + m.suffix + ")", false: ""}[m.suffix != ""]
	}
	fmt.Fprintf(&sb, "lb-bench: %s generator, 64 conns, %s, access logs %s; req/s and cpu are medians of %d slices\n", genName, kind.name, strings.Join(logs, " and "), slices)
	sum := make(map[string]loadResult, len(targets))
	for k, t := range targets {
		r := res[k].summary()
		sum[t.name] = r
		b.ReportMetric(r.rps, t.name+"-req/s")
		b.ReportMetric(float64(r.p50.Microseconds()), t.name+"-p50-µs")
		b.ReportMetric(float64(r.p99.Microseconds()), t.name+"-p99-µs")
		fmt.Fprintf(&sb, "  %-14s %7.0f req/s  p50 %6dµs  p99 %6dµs", t.name, r.rps, r.p50.Microseconds(), r.p99.Microseconds())
		if t.cpu != nil {
			b.ReportMetric(r.cpuPerReq, t.name+"-cpu-µs/req")
			fmt.Fprintf(&sb, "  proxy cpu %5.1f µs/req", r.cpuPerReq)
		} else {
			fmt.Fprintf(&sb, "  %22s", "")
		}
		b.ReportMetric(r.backendCPUPerReq, t.name+"-backend-cpu-µs/req")
		fmt.Fprintf(&sb, "  backends cpu %4.1f µs/req  generator cpu %4.1f µs/req  (%d requests)\n", r.backendCPUPerReq, r.genCPUPerReq, r.n)
	}
	sb.WriteString("  ratios:")
	d := sum["direct"].rps
	for _, t := range targets[1:] {
		ratio := sum[t.name].rps / d
		b.ReportMetric(ratio, "ratio-"+t.name+"/direct")
		fmt.Fprintf(&sb, " %s/direct %.2f", t.name, ratio)
	}
	for _, m := range modes {
		lb, ok := sum["lb"+m.suffix]
		if !ok {
			continue
		}
		for _, ref := range []string{"lb-base", "nginx", "haproxy"} {
			r, ok := sum[ref+m.suffix]
			if !ok || r.rps == 0 {
				continue
			}
			ratio := lb.rps / r.rps
			b.ReportMetric(ratio, "ratio-lb"+m.suffix+"/"+ref+m.suffix)
			fmt.Fprintf(&sb, " lb%s/%s%s %.2f (cpu %+.1f µs)", m.suffix, ref, m.suffix, ratio, lb.cpuPerReq-r.cpuPerReq)
		}
	}
	// The same CPU comparisons slice by slice: a neighbour's burst that
	// spoils a slice weighs on both sides of that slice's difference,
	// where a difference of two medians carries the noise of both.
	for _, m := range modes {
		for _, ref := range []string{"lb-base", "nginx", "haproxy"} {
			diffs, ok := sliceDiffs(res, targets, "lb"+m.suffix, ref+m.suffix)
			if !ok {
				continue
			}
			q1, q3 := quartilesOf(diffs)
			d := medianOf(diffs)
			b.ReportMetric(d, "cpu-lb"+m.suffix+"-minus-"+ref+m.suffix+"-µs/req")
			fmt.Fprintf(&sb, "\n  lb%s minus %s%s, proxy cpu slice by slice: median %+.2f µs/req (quartiles %+.2f and %+.2f, below in %d of %d slices)",
				m.suffix, ref, m.suffix, d, q1, q3, countBelow(diffs), len(diffs))
		}
	}
	for _, name := range []string{"lb", "lb-base", "nginx", "haproxy"} {
		diffs, ok := logCostDiffs(res, targets, name)
		if !ok {
			continue
		}
		cost := medianOf(diffs)
		b.ReportMetric(cost, name+"-log-cost-µs/req")
		// The spread shows how far one run's median can be trusted: the
		// same build's figure moves by a few tenths of a µs between runs.
		q1, q3 := quartilesOf(diffs)
		fmt.Fprintf(&sb, "\n  %s access log costs %+.2f µs/req of proxy cpu (slices' differences: quartiles %+.2f and %+.2f)",
			name, cost, q1, q3)
	}
	return sb.String()
}

// benchSlices is how many slices runLBSlices measures: ten, where the
// other figures would do with fewer, as the access log's cost is a
// difference of a few percent between two targets and its median needs
// the pairs; POSTERCTL_BENCH_SLICES sets more for a steadier median (each
// slice runs every target once, for b.N seconds under wrk).
func benchSlices(b *testing.B) int {
	v := os.Getenv("POSTERCTL_BENCH_SLICES")
	if v == "" {
		return 10
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("POSTERCTL_BENCH_SLICES=%q: want a positive number", v)
	}
	return n
}

// sliceOrder is the order in which slice s measures the targets: turned
// by s, so that no target always runs first or after the same one, and
// with a balancer's runs with and without its log swapped in every other
// slice, so that neither side of a pair (logCostDiffs) always runs first.
func sliceOrder(targets []*benchTarget, s int) []int {
	order := make([]int, len(targets))
	for i := range order {
		order[i] = (i + s) % len(targets)
	}
	if s%2 == 1 {
		for i := 0; i+1 < len(order); i++ {
			if targets[order[i+1]].name == targets[order[i]].name+"-nolog" {
				order[i], order[i+1] = order[i+1], order[i]
				i++
			}
		}
	}
	return order
}

// logCostDiffs are what name's access log adds to its CPU per request,
// slice by slice: the difference between its runs with and without the log
// in that slice. The two run back to back in every slice, so a neighbour's
// burst that spoils one slice weighs on both sides of its difference; the
// log's cost is their median, which one bad slice cannot move, where a
// difference of the two medians would carry the noise of both.
func logCostDiffs(res []loadResult, targets []*benchTarget, name string) ([]float64, bool) {
	return sliceDiffs(res, targets, name, name+"-nolog")
}

// sliceDiffs are target a's CPU per request minus target b's, slice by
// slice; false when either is missing or has no CPU figures.
func sliceDiffs(res []loadResult, targets []*benchTarget, a, b string) ([]float64, bool) {
	ia, ib := -1, -1
	for k, t := range targets {
		switch t.name {
		case a:
			ia = k
		case b:
			ib = k
		}
	}
	if ia < 0 || ib < 0 || len(res[ia].cpuS) == 0 || len(res[ia].cpuS) != len(res[ib].cpuS) {
		return nil, false
	}
	diffs := make([]float64, len(res[ia].cpuS))
	for s := range diffs {
		diffs[s] = res[ia].cpuS[s] - res[ib].cpuS[s]
	}
	return diffs, true
}

// countBelow is how many of xs are below zero.
func countBelow(xs []float64) int {
	n := 0
	for _, x := range xs {
		if x < 0 {
			n++
		}
	}
	return n
}

// benchTarget is one address the load generator measures; cpu, when set,
// is the CPU seconds used so far by the process(es) behind it.
type benchTarget struct {
	name string
	addr string
	cpu  func() float64
}

// startLBProcess runs the balancer binary with its log in a file and waits for
// its health port; it is SIGKILLed by pid at cleanup if still running.
func startLBProcess(b *testing.B, bin string, args ...string) *os.Process {
	logf, err := os.Create(b.TempDir() + "/lb.log")
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	b.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		logf.Close()
	})
	var health string
	for i, a := range args {
		if a == "--health-port" {
			health = "http://127.0.0.1:" + args[i+1] + "/health"
		}
	}
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	clitest.Eventually(b, 10*time.Second, func() error {
		select {
		case <-done:
			out, _ := os.ReadFile(logf.Name())
			b.Fatalf("lb exited: %s", out)
		default:
		}
		return clitest.GetOK(client, health)
	})
	return cmd.Process
}

// loadResult accumulates slices of one kind of run.
type loadResult struct {
	n          int
	elapsed    time.Duration
	cpu        float64 // seconds of the balancer's CPU
	genCPU     float64 // seconds of the load generator's CPU
	backendCPU float64 // seconds of the two backends' CPU
	lats       []time.Duration
	p50s, p99s []time.Duration // per slice, from a generator that gives only percentiles
	// per slice: req/s and µs of CPU per request of the balancer and the
	// backends, whose medians the summary gives (a neighbour's burst
	// spoils a slice, not the run)
	rpsS, cpuS, beS []float64

	rps          float64
	p50, p99     time.Duration
	cpuPerReq    float64 // µs of the balancer's CPU per request
	genCPUPerReq float64 // µs of the generator's CPU per request
	// µs of the backends' CPU per request
	backendCPUPerReq float64
}

func (r *loadResult) add(s loadResult) {
	r.n += s.n
	r.elapsed += s.elapsed
	r.cpu += s.cpu
	r.genCPU += s.genCPU
	r.backendCPU += s.backendCPU
	r.lats = append(r.lats, s.lats...)
	r.p50s = append(r.p50s, s.p50s...)
	r.p99s = append(r.p99s, s.p99s...)
	if s.n > 0 && s.elapsed > 0 {
		r.rpsS = append(r.rpsS, float64(s.n)/s.elapsed.Seconds())
		r.cpuS = append(r.cpuS, s.cpu*1e6/float64(s.n))
		r.beS = append(r.beS, s.backendCPU*1e6/float64(s.n))
	}
}

// medianOf is the median of xs, which it leaves in their order: the
// per-slice figures pair up by index (logCostDiffs).
func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Sorted(slices.Values(xs))
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// quartilesOf is the lower and upper quartile of xs, which it leaves in
// their order.
func quartilesOf(xs []float64) (float64, float64) {
	xs = slices.Sorted(slices.Values(xs))
	return xs[len(xs)/4], xs[len(xs)-1-len(xs)/4]
}

func (r loadResult) summary() loadResult {
	if r.n == 0 || r.elapsed <= 0 {
		return r
	}
	r.rps = medianOf(r.rpsS)
	r.cpuPerReq = medianOf(r.cpuS)
	r.genCPUPerReq = r.genCPU * 1e6 / float64(r.n)
	r.backendCPUPerReq = medianOf(r.beS)
	slices.Sort(r.lats)
	if len(r.lats) > 0 {
		r.p50, r.p99 = r.lats[len(r.lats)/2], r.lats[len(r.lats)*99/100]
	} else if len(r.p50s) > 0 {
		slices.Sort(r.p50s)
		slices.Sort(r.p99s)
		r.p50, r.p99 = r.p50s[len(r.p50s)/2], r.p99s[len(r.p99s)/2]
	}
	return r
}

// runLoad sends n copies of req to addr over 64 connections, each a goroutine
// with its own keep-alive connection, and measures them, with the CPU this
// process (the generator) spent.
func runLoad(b *testing.B, addr string, req []byte, n int) loadResult {
	const conns = 64
	gen0 := selfCPU()
	var (
		next atomic.Int64
		mu   sync.Mutex
		lats = make([]time.Duration, 0, n)
		wg   sync.WaitGroup
	)
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &rawClient{addr: addr, timeout: 10 * time.Second}
			defer c.close()
			var resp rawResponse
			local := make([]time.Duration, 0, n/conns+1)
			for next.Add(1) <= int64(n) {
				t0 := time.Now()
				if err := c.do(req, &resp); err != nil {
					b.Errorf("via %s: %v", addr, err)
					return
				}
				local = append(local, time.Since(t0))
				if resp.status != 200 || string(resp.body) != helperBody {
					b.Errorf("via %s: %d %q", addr, resp.status, resp.body)
					return
				}
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return loadResult{n: n, elapsed: time.Since(start), lats: lats, genCPU: selfCPU() - gen0}
}

// selfCPU is the user+system CPU seconds of this process.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
