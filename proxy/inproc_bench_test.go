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
func BenchmarkProxyInProcess(b *testing.B) {
	addrA, addrB := deadAddr(b), deadAddr(b)
	startHelperBackend(b, addrA, "a")
	startHelperBackend(b, addrB, "b")
	lw := NewLogWriter(io.Discard, 100*time.Millisecond)
	defer lw.Close()
	s, err := NewServer(Config{Listen: "127.0.0.1:0", HealthListen: "127.0.0.1:0", Backends: []string{addrA, addrB}},
		zerolog.New(lw).With().Timestamp().Logger(), nil)
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
	b.ResetTimer()
	r := runLoad(b, s.Addr(), benchGET().req, b.N)
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N), "allocs/req")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/float64(b.N), "B/req")
	b.ReportMetric(float64(r.n)/r.elapsed.Seconds(), "req/s")
}
