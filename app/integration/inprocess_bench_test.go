package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"testing"

	"github.com/posterctl/posterctl/app/sqlite"
	"github.com/posterctl/posterctl/app/web"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
)

// BenchmarkServerInProcess runs web.Server on a SQLite store inside the test
// process, under the same load as BenchmarkBackendCPU, so that -cpuprofile
// and -memprofile show where a request's CPU goes (the profile holds the
// load generator too; focus on net/http.(*conn).serve):
//
//	go test -run '^$' -bench 'ServerInProcess/POST_posts$' -benchtime 4s -cpuprofile cpu.out ./app/integration/
func BenchmarkServerInProcess(b *testing.B) {
	db := sqlite.NewDB(dbPath(b))
	if err := db.Open(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	srv := web.NewServer(db, "inproc", zerolog.New(os.Stderr).Level(zerolog.WarnLevel))
	srv.BcryptCost = bcrypt.MinCost
	if err := srv.Open("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close(context.Background()) })

	hc := newHTTPClient(4)
	b.Cleanup(hc.CloseIdleConnections)
	c := &client{tb: b, hc: hc}
	c.registerAndLogin(srv.URL(), "bench_user", "bench-password")
	for i := range cpuBenchPosts {
		c.must("POST", srv.URL()+"/api/posts", map[string]string{"content": fmt.Sprint("seed post number ", i, ", of a length like most posts have")}, http.StatusCreated)
	}
	list := getReq("/api/posts", "")
	for _, ep := range []endpoint{
		{"GET_posts", list, http.StatusOK},
		{"GET_posts_limit1", getReq("/api/posts?limit=1", ""), http.StatusOK},
		{"GET_user_session", getReq("/api/user", c.cookie), http.StatusOK},
		{"POST_posts", postReq(c.cookie, false), http.StatusCreated},
		{"POST_posts_idem", postReq(c.cookie, true), http.StatusCreated},
		{"mixed_9GET_1POST", mixed(list, postReq(c.cookie, false)), mixedWant},
	} {
		b.Run(ep.name, func(b *testing.B) {
			res := driveLoad([]string{srv.Addr().String()}, cpuBenchConns, int64(b.N), ep)
			if res.failures > 0 {
				b.Fatalf("%d of %d requests failed, first: %s", res.failures, res.requests, res.firstErr)
			}
			b.ReportMetric(float64(res.requests)/res.elapsed.Seconds(), "req/s")
		})
	}
}
