package proxy

import (
	"context"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// BenchmarkProxyInProcess runs the balancer inside the test process, in
// front of two helper backends, so that `go test -cpuprofile` and
// `-memprofile` see its hot path (BenchmarkLoadBalancer runs it as a separate
// process, as deployed). Access lines are written, batched, to nowhere.
// allocs/req counts every heap allocation of this process per proxied
// request; the load generator's own are a rounding error.
//
// POSTERCTL_BENCH_LOADGEN=wrk loads it with wrk for b.N seconds instead
// (-benchtime 5x), so that cpu-µs/req and a CPU profile are the balancer's
// alone.
//
// log=off is the same with the access lines below the logger's level, so the
// difference is what the access log costs the balancer.
func BenchmarkProxyInProcess(b *testing.B) {
	addrA, addrB := deadAddr(b), deadAddr(b)
	startHelperBackend(b, addrA, "a")
	startHelperBackend(b, addrB, "b")
	for _, kind := range []benchRequest{benchGET(), benchPOST512()} {
		for _, lvl := range []zerolog.Level{zerolog.InfoLevel, zerolog.WarnLevel} {
			name := map[zerolog.Level]string{zerolog.InfoLevel: "log=on", zerolog.WarnLevel: "log=off"}[lvl]
			b.Run(kind.name+"/"+name, func(b *testing.B) { benchProxyInProcess(b, kind, lvl, addrA, addrB) })
		}
	}
}

func benchProxyInProcess(b *testing.B, kind benchRequest, lvl zerolog.Level, addrA, addrB string) {
	lw := NewLogWriter(io.Discard, 100*time.Millisecond)
	defer lw.Close()
	s, err := NewServer(Config{Listen: "127.0.0.1:0", HealthListen: "127.0.0.1:0", Backends: []string{addrA, addrB}},
		zerolog.New(lw).Level(lvl).With().Timestamp().Logger(), nil)
	if err != nil {
		b.Fatal(err)
	}
	s.SetAccessLog(NewAccessLog(lw)) // as `posterctl lb` logs off a terminal
	if err := s.Open(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			b.Errorf("close: %v", err)
		}
	}()
	runLoad(b, s.Addr(), kind.req, 2000) // fill the connection pools
	wrk := os.Getenv("POSTERCTL_BENCH_LOADGEN") == "wrk"
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := selfCPU()
	b.ResetTimer()
	var r loadResult
	if wrk {
		// wrk, a separate process, runs for b.N seconds: the CPU figure is
		// then the balancer's alone.
		r = wrkGen{threads: runtime.NumCPU()}.run(b, s.Addr(), kind, time.Duration(b.N)*time.Second)
	} else {
		r = runLoad(b, s.Addr(), kind.req, b.N)
	}
	b.StopTimer()
	cpu := selfCPU() - cpu0
	runtime.ReadMemStats(&m1)
	n := float64(r.n)
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/n, "allocs/req")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/n, "B/req")
	b.ReportMetric(n/r.elapsed.Seconds(), "req/s")
	// With the Go generator, the balancer's and the generator's CPU
	// together: compare runs, not this figure with the separate-process ones.
	b.ReportMetric(cpu*1e6/n, "cpu-µs/req")
}
