package integration

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/posterctl/posterctl/app/postgres/pgtest"
)

// BenchmarkBackend measures requests/s for reading and writing posts against
// one backend process and against two processes sharing the store, on
// SQLite and on PostgreSQL, in the same run so the figures compare. Backends
// log at warn level, so the access log (one line per request) is not part of
// the figure.
//
// PostgreSQL is the server named by POSTERCTL_TEST_POSTGRES (a schema of
// its own) or, without one, a private server started from the installed
// binaries with durable settings; without either the PostgreSQL half skips.
func BenchmarkBackend(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run("db="+engine, func(b *testing.B) { benchmarkBackend(b, engine) })
	}
}

// benchDB returns a fresh, empty store of the given engine for --db.
func benchDB(b *testing.B, engine string) string {
	if engine == "sqlite" {
		return dbPath(b)
	}
	if pgtest.SkipReason() == "" {
		return pgtest.Schema(b, pgtest.DSN(b))
	}
	return pgtest.StartServer(b, "fsync=on", "full_page_writes=on").DSN
}

func benchmarkBackend(b *testing.B, engine string) {
	for _, procs := range []int{1, 2} {
		b.Run(fmt.Sprintf("procs=%d", procs), func(b *testing.B) {
			db := benchDB(b, engine)
			var urls []string
			for i := range procs {
				urls = append(urls, startBackend(b, db, fmt.Sprintf("backend-%d", i+1), "--log-level", "warn").url)
			}
			hc := newHTTPClient(256)
			b.Cleanup(hc.CloseIdleConnections)
			seed := &client{tb: b, hc: hc}
			seed.registerAndLogin(urls[0], "bench_user", "bench-password")
			for i := range 100 {
				seed.must("POST", urls[i%procs]+"/api/posts", map[string]string{"content": fmt.Sprint("seed post ", i)}, http.StatusCreated)
			}

			run := func(b *testing.B, method, path string, body any, want int) {
				var next, failures atomic.Int64
				b.SetParallelism(8)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					c := &client{tb: b, hc: hc, cookie: seed.cookie}
					for pb.Next() {
						u := urls[int(next.Add(1))%len(urls)]
						r, err := c.do(method, u+path, body)
						if err != nil || r.status != want {
							if failures.Add(1) == 1 {
								b.Errorf("%s %s: %v %d %s", method, path, err, r.status, r.body)
							}
						}
					}
				})
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
				if n := failures.Load(); n > 0 {
					b.Fatalf("%d of %d requests failed", n, b.N)
				}
			}
			b.Run("GET_posts", func(b *testing.B) {
				run(b, "GET", "/api/posts", nil, http.StatusOK)
			})
			b.Run("POST_posts", func(b *testing.B) {
				run(b, "POST", "/api/posts", map[string]string{"content": "a benchmark post of moderate length, like most posts are"}, http.StatusCreated)
			})
		})
	}
}
