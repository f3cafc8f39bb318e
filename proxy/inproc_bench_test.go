package proxy

import (
	"context"
	"io"
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
// log=off is the same with the access lines below the logger's level, so the
// difference is what the access log costs the balancer.
func BenchmarkProxyInProcess(b *testing.B) {
	addrA, addrB := deadAddr(b), deadAddr(b)
	startHelperBackend(b, addrA, "a")
	startHelperBackend(b, addrB, "b")
	for _, lvl := range []zerolog.Level{zerolog.InfoLevel, zerolog.WarnLevel} {
		name := map[zerolog.Level]string{zerolog.InfoLevel: "log=on", zerolog.WarnLevel: "log=off"}[lvl]
		b.Run(name, func(b *testing.B) { benchProxyInProcess(b, lvl, addrA, addrB) })
	}
}

func benchProxyInProcess(b *testing.B, lvl zerolog.Level, addrA, addrB string) {
	lw := NewLogWriter(io.Discard, 100*time.Millisecond)
	defer lw.Close()
	s, err := NewServer(Config{Listen: "127.0.0.1:0", HealthListen: "127.0.0.1:0", Backends: []string{addrA, addrB}},
		zerolog.New(lw).Level(lvl).With().Timestamp().Logger(), nil)
	if err != nil {
		b.Fatal(err)
	}
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
	runLoad(b, s.Addr(), benchGET().req, 2000) // fill the connection pools
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := selfCPU()
	b.ResetTimer()
	r := runLoad(b, s.Addr(), benchGET().req, b.N)
	b.StopTimer()
	cpu := selfCPU() - cpu0
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N), "allocs/req")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/float64(b.N), "B/req")
	b.ReportMetric(float64(r.n)/r.elapsed.Seconds(), "req/s")
	// The balancer's and the generator's CPU together: compare runs, not
	// this figure with the separate-process ones.
	b.ReportMetric(cpu*1e6/float64(b.N), "cpu-µs/req")
}
