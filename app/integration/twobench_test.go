package integration

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"testing"
	"time"
)

// BenchmarkTwoBackendsWrite measures what sharing the SQLite write lock
// costs: the same 16-connection load on one backend, then spread over two
// backends of one file, for POST /api/posts, the 9:1 mix and GET
// /api/posts. Between processes a writer that finds the lock taken waits in
// SQLite's busy handler, which sleeps in millisecond steps, so the lock
// shows as p99 latency and lost req/s rather than CPU. With
// POSTERCTL_BENCH_BASELINE_BIN set, the baseline's pair runs interleaved.
//
//	go test -run '^$' -bench TwoBackendsWrite -benchtime 2s ./app/integration/
func BenchmarkTwoBackendsWrite(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("SKIPPED: reads backend CPU time from /proc (Linux only)")
	}
	bins := [][2]string{{"new", bin}}
	if base := os.Getenv(BaselineEnv); base != "" {
		bins = append(bins, [2]string{"base", base})
	}
	type pair struct {
		name string
		bes  [2]*backend
		eps  []endpoint
	}
	hc := newHTTPClient(4)
	b.Cleanup(hc.CloseIdleConnections)
	var pairs []pair
	for _, nb := range bins {
		db := dbPath(b)
		p := pair{name: nb[0]}
		for i := range p.bes {
			p.bes[i] = startBackendBin(b, nb[1], db, fmt.Sprintf("bench-%s-%d", nb[0], i+1), "--log-level", "warn")
		}
		c := &client{tb: b, hc: hc}
		c.registerAndLogin(p.bes[0].url, "bench_user", "bench-password")
		for i := range cpuBenchPosts {
			c.must("POST", p.bes[i%2].url+"/api/posts", map[string]string{"content": fmt.Sprint("seed post number ", i)}, http.StatusCreated)
		}
		list := getReq("/api/posts", "")
		p.eps = []endpoint{
			{"POST_posts", postReq(c.cookie, false), http.StatusCreated},
			{"mixed_9GET_1POST", mixed(list, postReq(c.cookie, false)), mixedWant},
			{"GET_posts", list, http.StatusOK},
		}
		pairs = append(pairs, p)
	}
	for i := range pairs[0].eps {
		for _, procs := range []int{1, 2} {
			for _, p := range pairs {
				ep := p.eps[i]
				b.Run(fmt.Sprintf("%s/procs=%d/%s", ep.name, procs, p.name), func(b *testing.B) {
					var addrs []string
					var before time.Duration
					for _, be := range p.bes[:procs] {
						addrs = append(addrs, be.url[len("http://"):])
						t, err := procCPU(be.Pid())
						if err != nil {
							b.Fatal(err)
						}
						before += t
					}
					res := driveLoad(addrs, cpuBenchConns, int64(b.N), ep)
					var after time.Duration
					for _, be := range p.bes[:procs] {
						t, err := procCPU(be.Pid())
						if err != nil {
							b.Fatal(err)
						}
						after += t
					}
					if res.failures > 0 {
						b.Fatalf("%d of %d requests failed, first: %s", res.failures, res.requests, res.firstErr)
					}
					if res.requests == 0 {
						b.Fatal("no request answered")
					}
					b.ReportMetric(float64(res.requests)/res.elapsed.Seconds(), "req/s")
					b.ReportMetric(float64(res.p50)/float64(time.Microsecond), "p50-µs")
					b.ReportMetric(float64(res.p99)/float64(time.Microsecond), "p99-µs")
					b.ReportMetric(float64(after-before)/float64(time.Microsecond)/float64(res.requests), "cpu-µs/req")
				})
			}
		}
	}
}
