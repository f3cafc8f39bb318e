package proxy

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"sync"
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
// binary, logging its access lines to a file as under the supervisor).
// "direct" runs first; "lb" reports its ratio to it.
func BenchmarkLoadBalancer(b *testing.B) {
	bin, cleanup, err := clitest.Build()
	if err != nil {
		b.Fatalf("build posterctl: %v", err)
	}
	defer cleanup()
	addrA, addrB := deadAddr(b), deadAddr(b)
	startHelperBackend(b, addrA, "a")
	startHelperBackend(b, addrB, "b")
	lbPort, healthPort := clitest.FreePort(b), clitest.FreePort(b)
	lb := startLBProcess(b, bin, "--log-format", "json", "lb",
		"--host", "127.0.0.1", "--port", strconv.Itoa(lbPort), "--health-port", strconv.Itoa(healthPort),
		"--backend", addrA, "--backend", "http://"+addrB)
	lbAddr := "127.0.0.1:" + strconv.Itoa(lbPort)

	var direct loadResult
	b.Run("direct", func(b *testing.B) {
		direct = runLoad(b, addrA, nil)
		direct.report(b)
	})
	b.Run("lb", func(b *testing.B) {
		r := runLoad(b, lbAddr, lb)
		r.report(b)
		if direct.rps > 0 {
			ratio := r.rps / direct.rps
			b.ReportMetric(ratio, "ratio-lb/direct")
			if b.N > 1000 { // the final round, not the calibration ones
				fmt.Printf("lb-bench: direct %.0f req/s p50 %v p99 %v | lb %.0f req/s p50 %v p99 %v (lb cpu %.1f µs/req) | ratio lb/direct %.2f\n",
					direct.rps, direct.p50, direct.p99, r.rps, r.p50, r.p99, r.cpuPerReq, ratio)
			}
		}
	})
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

type loadResult struct {
	rps       float64
	p50, p99  time.Duration
	cpuPerReq float64 // µs of the balancer process's CPU per request
}

func (r loadResult) report(b *testing.B) {
	b.ReportMetric(r.rps, "req/s")
	b.ReportMetric(float64(r.p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(r.p99.Microseconds()), "p99-µs")
	if r.cpuPerReq > 0 {
		b.ReportMetric(r.cpuPerReq, "lb-cpu-µs/req")
	}
}

// runLoad sends b.N GETs over 64 connections (32 goroutines per CPU on this
// 2-core machine; SetParallelism scales with GOMAXPROCS) and measures them.
func runLoad(b *testing.B, addr string, cpuOf *os.Process) loadResult {
	req := []byte("GET /api/posts/1 HTTP/1.1\r\nHost: poster\r\nUser-Agent: posterctl-bench\r\nAccept: application/json\r\n\r\n")
	var (
		mu   sync.Mutex
		lats []time.Duration
	)
	var cpu0 float64
	var proc *process.Process
	if cpuOf != nil {
		proc, _ = process.NewProcess(int32(cpuOf.Pid))
		if t, err := proc.Times(); err == nil {
			cpu0 = t.User + t.System
		}
	}
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		c := &rawClient{addr: addr, timeout: 10 * time.Second}
		defer c.close()
		var resp rawResponse
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
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
	})
	elapsed := time.Since(start)
	b.StopTimer()
	r := loadResult{rps: float64(b.N) / elapsed.Seconds()}
	if len(lats) > 0 {
		slices.Sort(lats)
		r.p50, r.p99 = lats[len(lats)/2], lats[len(lats)*99/100]
	}
	if proc != nil {
		if t, err := proc.Times(); err == nil && b.N > 0 {
			r.cpuPerReq = (t.User + t.System - cpu0) * 1e6 / float64(b.N)
		}
	}
	return r
}
