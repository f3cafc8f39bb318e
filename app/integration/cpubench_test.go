package integration

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
)

// BaselineEnv names a posterctl binary (built from main, say) that
// BenchmarkBackendCPU runs beside the one under test, interleaved, so that
// the two compare on a machine whose speed drifts from run to run.
const BaselineEnv = "POSTERCTL_BENCH_BASELINE_BIN"

// cpuBenchConns is the number of keep-alive connections of the load, as in
// the measurements (wrk -c16).
const cpuBenchConns = 16

// cpuBenchPosts is the number of posts in the store before the load.
const cpuBenchPosts = 60

// BenchmarkBackendCPU measures the CPU one backend process spends per
// request (utime+stime from /proc divided by the answers), for each endpoint
// and for a 9:1 mix of GET /api/posts and POST /api/posts, with 16
// keep-alive connections; -benchtime bounds each run. With
// POSTERCTL_BENCH_BASELINE_BIN set, a backend of that binary is measured too,
// each run of one followed by the same run of the other, for
// POSTERCTL_BENCH_ROUNDS rounds (3), and the medians and their ratio are
// printed at the end:
//
//	POSTERCTL_BENCH_BASELINE_BIN=/tmp/appbase/posterctl \
//	  go test -run '^$' -bench BackendCPU -benchtime 2s ./app/integration/
func BenchmarkBackendCPU(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("SKIPPED: reads backend CPU time from /proc (Linux only)")
	}
	rounds := 3
	if v := os.Getenv("POSTERCTL_BENCH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("POSTERCTL_BENCH_ROUNDS=%q: want a positive number", v)
		}
		rounds = n
	}

	type target struct {
		name string
		be   *backend
		eps  []endpoint
	}
	bins := [][2]string{{"new", bin}}
	if base := os.Getenv(BaselineEnv); base != "" {
		bins = append(bins, [2]string{"base", base})
	}
	var targets []target
	hc := newHTTPClient(4)
	b.Cleanup(hc.CloseIdleConnections)
	for _, nb := range bins {
		be := startBackendBin(b, nb[1], dbPath(b), "bench-"+nb[0], "--log-level", "warn")
		c := &client{tb: b, hc: hc}
		c.registerAndLogin(be.url, "bench_user", "bench-password")
		for i := range cpuBenchPosts {
			c.must("POST", be.url+"/api/posts", map[string]string{"content": fmt.Sprint("seed post number ", i, ", of a length like most posts have")}, http.StatusCreated)
		}
		list := getReq("/api/posts", "")
		targets = append(targets, target{name: nb[0], be: be, eps: []endpoint{
			{"GET_posts", list, http.StatusOK},
			{"GET_posts_limit1", getReq("/api/posts?limit=1", ""), http.StatusOK},
			{"GET_healthz", getReq("/healthz", ""), http.StatusOK},
			{"GET_user_401", getReq("/api/user", ""), http.StatusUnauthorized},
			{"GET_user_session", getReq("/api/user", c.cookie), http.StatusOK},
			{"POST_posts", postReq(c.cookie, false), http.StatusCreated},
			{"POST_posts_idem", postReq(c.cookie, true), http.StatusCreated},
			{"mixed_9GET_1POST", mixed(list, postReq(c.cookie, false)), mixedWant},
		}})
	}

	cpu := map[string][]float64{} // endpoint/target -> µs per request, by round
	for round := 1; round <= rounds; round++ {
		for i := range targets[0].eps {
			for _, t := range targets {
				ep := t.eps[i]
				key := ep.name + "/" + t.name
				if round == 1 {
					cpu[key] = make([]float64, rounds)
				}
				b.Run(fmt.Sprintf("%s/%s/round=%d", ep.name, t.name, round), func(b *testing.B) {
					before, err := procCPU(t.be.Pid())
					if err != nil {
						b.Fatal(err)
					}
					res := driveLoad([]string{t.be.url[len("http://"):]}, cpuBenchConns, int64(b.N), ep)
					after, err := procCPU(t.be.Pid())
					if err != nil {
						b.Fatal(err)
					}
					if res.failures > 0 {
						b.Fatalf("%d of %d requests failed, first: %s\n%s", res.failures, res.requests, res.firstErr, t.be.Output())
					}
					if res.requests == 0 {
						b.Fatal("no request answered")
					}
					us := float64(after-before) / float64(time.Microsecond) / float64(res.requests)
					// Only the last, full-size, run of each sub-benchmark counts.
					cpu[key][round-1] = us
					b.ReportMetric(us, "cpu-µs/req")
					b.ReportMetric(float64(res.requests)/res.elapsed.Seconds(), "req/s")
					b.ReportMetric(float64(res.p99)/float64(time.Microsecond), "p99-µs")
				})
			}
		}
	}

	var sum strings.Builder
	fmt.Fprintf(&sum, "backend CPU per request, median of %d rounds, %d connections:\n", rounds, cpuBenchConns)
	for _, ep := range targets[0].eps {
		fmt.Fprintf(&sum, "  %-18s", ep.name)
		var meds []float64
		for _, t := range targets {
			m := median(cpu[ep.name+"/"+t.name])
			meds = append(meds, m)
			fmt.Fprintf(&sum, "  %s %7.1f µs", t.name, m)
		}
		if len(meds) == 2 && meds[1] > 0 {
			fmt.Fprintf(&sum, "  new/base %.2f", meds[0]/meds[1])
		}
		sum.WriteByte('\n')
	}
	// Printed rather than logged: a parent benchmark's log shows only
	// under -v, and this table is the point of the run.
	fmt.Print(sum.String())
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// startBackendBin is startBackend with another posterctl binary.
func startBackendBin(tb testing.TB, path, db, name string, extra ...string) *backend {
	tb.Helper()
	port := clitest.FreePort(tb)
	args := append(extra, "backend", "--port", strconv.Itoa(port), "--db", db, "--name", name)
	p := clitest.Start(tb, path, args...)
	be := &backend{Process: p, name: name, port: port, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	waitHealthy(tb, be)
	return be
}
