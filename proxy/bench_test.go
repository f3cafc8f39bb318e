package proxy

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v3/process"

	"github.com/posterctl/posterctl/internal/clitest"
)

// BenchmarkLoadBalancer measures, in one run, throughput and latency straight
// to one backend and through `posterctl lb` in front of two, with the same
// load generator: 64 keep-alive connections sending GETs for a small fixed
// JSON body. Backends and the balancer are separate processes (the backends
// are this test binary re-run as helpers, the balancer is the built posterctl
// binary, logging its access lines to a file as under the supervisor). The
// two runs alternate in slices, so a neighbour's load on this shared machine
// weighs on both alike; the ratio is taken from the same run.
func BenchmarkLoadBalancer(b *testing.B) {
	bin := posterctlBin
	addrA, addrB := deadAddr(b), deadAddr(b)
	startHelperBackend(b, addrA, "a")
	startHelperBackend(b, addrB, "b")
	lbPort, healthPort := clitest.FreePort(b), clitest.FreePort(b)
	lb := startLBProcess(b, bin, "--log-format", "json", "lb",
		"--host", "127.0.0.1", "--port", strconv.Itoa(lbPort), "--health-port", strconv.Itoa(healthPort),
		"--backend", addrA, "--backend", "http://"+addrB)
	lbAddr := "127.0.0.1:" + strconv.Itoa(lbPort)

	var last string
	b.Run("GET-64conns", func(b *testing.B) {
		const slices = 4
		var direct, viaLB loadResult
		per := max(1, b.N/slices)
		for range slices {
			direct.add(runLoad(b, addrA, per, nil))
			viaLB.add(runLoad(b, lbAddr, per, lb))
		}
		d, l := direct.summary(), viaLB.summary()
		ratio := l.rps / d.rps
		b.ReportMetric(d.rps, "direct-req/s")
		b.ReportMetric(float64(d.p50.Microseconds()), "direct-p50-µs")
		b.ReportMetric(float64(d.p99.Microseconds()), "direct-p99-µs")
		b.ReportMetric(l.rps, "lb-req/s")
		b.ReportMetric(float64(l.p50.Microseconds()), "lb-p50-µs")
		b.ReportMetric(float64(l.p99.Microseconds()), "lb-p99-µs")
		b.ReportMetric(l.cpuPerReq, "lb-cpu-µs/req")
		b.ReportMetric(ratio, "ratio-lb/direct")
		last = fmt.Sprintf("lb-bench: 64 conns, GET small JSON, %d requests each | direct %.0f req/s p50 %v p99 %v | via lb %.0f req/s p50 %v p99 %v, lb cpu %.1f µs/req | ratio lb/direct %.2f",
			len(l.lats), d.rps, d.p50, d.p99, l.rps, l.p50, l.p99, l.cpuPerReq, ratio)
	})
	fmt.Println(last) // the final round's figures, once
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
		resp, err := client.Get(health)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("health %d", resp.StatusCode)
		}
		return nil
	})
	return cmd.Process
}

// loadResult accumulates slices of one kind of run.
type loadResult struct {
	n       int
	elapsed time.Duration
	cpu     float64 // seconds of the balancer's CPU
	lats    []time.Duration

	rps       float64
	p50, p99  time.Duration
	cpuPerReq float64 // µs of the balancer's CPU per request
}

func (r *loadResult) add(s loadResult) {
	r.n += s.n
	r.elapsed += s.elapsed
	r.cpu += s.cpu
	r.lats = append(r.lats, s.lats...)
}

func (r loadResult) summary() loadResult {
	if r.n == 0 || r.elapsed <= 0 {
		return r
	}
	r.rps = float64(r.n) / r.elapsed.Seconds()
	r.cpuPerReq = r.cpu * 1e6 / float64(r.n)
	slices.Sort(r.lats)
	if len(r.lats) > 0 {
		r.p50, r.p99 = r.lats[len(r.lats)/2], r.lats[len(r.lats)*99/100]
	}
	return r
}

// runLoad sends n GETs to addr over 64 connections, each a goroutine with
// its own keep-alive connection, and measures them; cpuOf, if set, is the
// process whose CPU time is counted.
func runLoad(b *testing.B, addr string, n int, cpuOf *os.Process) loadResult {
	const conns = 64
	req := []byte("GET /api/posts/1 HTTP/1.1\r\nHost: poster\r\nUser-Agent: posterctl-bench\r\nAccept: application/json\r\n\r\n")
	var proc *process.Process
	cpu0 := 0.0
	if cpuOf != nil {
		proc, _ = process.NewProcess(int32(cpuOf.Pid))
		if t, err := proc.Times(); err == nil {
			cpu0 = t.User + t.System
		}
	}
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
					b.Errorf("GET via %s: %v", addr, err)
					return
				}
				local = append(local, time.Since(t0))
				if resp.status != 200 || string(resp.body) != helperBody {
					b.Errorf("GET via %s: %d %q", addr, resp.status, resp.body)
					return
				}
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := loadResult{n: n, elapsed: time.Since(start), lats: lats}
	if proc != nil {
		if t, err := proc.Times(); err == nil {
			r.cpu = t.User + t.System - cpu0
		}
	}
	return r
}
