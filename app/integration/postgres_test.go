package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app/postgres/pgtest"
	"github.com/posterctl/posterctl/internal/clitest"
)

// startBackendEnv is startBackend with the connection string passed in
// POSTERCTL_DB, as a supervisor does to keep the password out of argv.
func startBackendEnv(tb testing.TB, db, name string, extra ...string) *backend {
	tb.Helper()
	port := clitest.FreePort(tb)
	cmd := exec.Command(bin, append(extra, "backend", "--port", strconv.Itoa(port), "--name", name)...)
	cmd.Env = append(os.Environ(), "POSTERCTL_DB="+db)
	p := clitest.StartCmd(tb, cmd)
	b := &backend{Process: p, name: name, port: port, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	waitHealthy(tb, b)
	return b
}

// TestPostgres_SharedSession is TestBackend_SharedSession on PostgreSQL: two
// backend processes on one database (one given it by --db, one by
// POSTERCTL_DB) are one app.
func TestPostgres_SharedSession(t *testing.T) {
	dsn := pgtest.Schema(t, pgtest.DSN(t))
	a := startBackend(t, dsn, "backend-a")
	b := startBackendEnv(t, dsn, "backend-b")
	hc := newHTTPClient(4)
	defer hc.CloseIdleConnections()

	alice := checkOneStore(t, hc, a, b, func(table string) int { return pgtest.Count(t, dsn, table) })
	// Usernames are unique whatever their case, as with SQLite.
	(&client{tb: t, hc: hc}).must("POST", b.url+"/api/register",
		map[string]string{"username": "ALICE", "password": "other-password"}, http.StatusConflict)

	// Logout through a ends the session on b.
	alice.must("DELETE", a.url+"/api/logout", nil, http.StatusNoContent)
	alice.must("GET", b.url+"/api/user", nil, http.StatusUnauthorized)

	// The start-up line names the database without its password.
	u2, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	clitest.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(a.Output(), `"db":"`+u2.Redacted()) {
			return fmt.Errorf("no start-up line with the redacted database:\n%s", a.Output())
		}
		return nil
	})
	if pw, ok := u2.User.Password(); ok {
		for _, be := range []*backend{a, b} {
			if strings.Contains(be.Output(), ":"+pw+"@") {
				t.Errorf("%s logged the password:\n%s", be.name, be.Output())
			}
		}
	}
}

// TestPostgres_Concurrency is TestBackend_Concurrency on PostgreSQL, with
// half the posts: 16 clients through two backends, 4000 posts, no 5xx.
func TestPostgres_Concurrency(t *testing.T) {
	dsn := pgtest.Schema(t, pgtest.DSN(t))
	testConcurrency(t, dsn, 250, func(table string) int { return pgtest.Count(t, dsn, table) })
}

// outcome is one request of the load in TestPostgres_Outage.
type outcome struct {
	backend string
	at      time.Time // when the answer (or the error) came
	took    time.Duration
	status  int
	body    string
	err     error
}

// recorder keeps the outcomes of the load goroutines.
type recorder struct {
	mu  sync.Mutex
	all []outcome
}

func (r *recorder) add(o outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, o)
}

// since returns the outcomes that came at or after t.
func (r *recorder) since(t time.Time) []outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []outcome
	for _, o := range r.all {
		if !o.at.Before(t) {
			out = append(out, o)
		}
	}
	return out
}

// requestTimeout is the client's limit for one request in the outage tests:
// a backend must answer within it whatever PostgreSQL does.
const requestTimeout = 10 * time.Second

// TestPostgres_Outage is the outage acceptance. Two backends share a
// private PostgreSQL server under steady load; the server is stopped: every
// request answers 503 JSON within the request timeout (no 500, no hang) and
// /healthz says the store is unavailable; the server is started again:
// requests succeed through both backends within 5 s, with the same backend
// processes. The password is in no output.
func TestPostgres_Outage(t *testing.T) {
	testOutage(t, outage{
		name:      "stopped",
		begin:     func(srv *pgtest.Server) { srv.Stop(t) },
		end:       func(srv *pgtest.Server) { srv.Start(t) },
		min503:    10,
		slowest:   requestTimeout / 2,
		wantCause: "store unavailable: ",
	})
}

// TestPostgres_Frozen is the outage that hangs rather than refuses: the
// server's processes are stopped with SIGSTOP, so connections open but
// nothing answers, as in a network partition. The connect timeout and the
// per-call deadline must still turn every request into a 503 within the
// request timeout; SIGCONT brings success back within 5 s.
func TestPostgres_Frozen(t *testing.T) {
	testOutage(t, outage{
		name:      "frozen",
		begin:     func(srv *pgtest.Server) { srv.Freeze(t) },
		end:       func(srv *pgtest.Server) { srv.Thaw(t) },
		min503:    2,
		slowest:   requestTimeout - time.Second,
		wantCause: "store unavailable: the database server did not answer in time",
	})
}

// outage is one way of taking PostgreSQL away under load and bringing it
// back.
type outage struct {
	name       string
	begin, end func(*pgtest.Server)
	min503     int           // 503s to see from each backend before ending the outage
	slowest    time.Duration // limit on any answer, in any phase
	wantCause  string        // prefix of /healthz's error during the outage
}

func testOutage(t *testing.T, o outage) {
	srv := pgtest.StartServer(t)
	t.Logf("PostgreSQL started at %v", time.Now().Format(time.StampMilli))
	backends := []*backend{
		startBackend(t, srv.DSN, "backend-a", "--log-level", "warn"),
		startBackendEnv(t, srv.DSN, "backend-b", "--log-level", "warn"),
	}
	pids := []int{backends[0].Pid(), backends[1].Pid()}
	hc := newHTTPClient(16)
	hc.Timeout = requestTimeout
	defer hc.CloseIdleConnections()
	user := &client{tb: t, hc: hc}
	user.registerAndLogin(backends[0].url, "olga", "olga-password")

	rec := &recorder{}
	stop := make(chan struct{})
	var load sync.WaitGroup
	const workers = 4
	for w := range workers {
		load.Go(func() {
			c := &client{tb: t, hc: hc, cookie: user.cookie}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				be := backends[(w+i)%len(backends)]
				start := time.Now()
				var r reply
				var err error
				if i%2 == 0 {
					r, err = c.do("POST", be.url+"/api/posts", map[string]string{"content": fmt.Sprint("load ", w, " ", i)},
						"Idempotency-Key", fmt.Sprint("w", w, "-", i))
				} else {
					r, err = c.do("GET", be.url+"/api/posts?limit=5", nil)
				}
				rec.add(outcome{backend: be.name, at: time.Now(), took: time.Since(start), status: r.status, body: string(r.body), err: err})
			}
		})
	}
	stopLoad := sync.OnceFunc(func() { close(stop); load.Wait() })
	defer stopLoad()

	// count returns, per backend, the requests since t0 that ok accepts.
	count := func(t0 time.Time, ok func(outcome) bool) map[string]int {
		n := map[string]int{}
		for _, oc := range rec.since(t0) {
			if ok(oc) {
				n[oc.backend]++
			}
		}
		return n
	}
	succeeded := func(oc outcome) bool {
		return oc.err == nil && (oc.status == http.StatusOK || oc.status == http.StatusCreated)
	}
	unavailable := func(oc outcome) bool { return oc.err == nil && oc.status == http.StatusServiceUnavailable }
	atLeast := func(t0 time.Time, ok func(outcome) bool, min int, what string) func() error {
		return func() error {
			if n := count(t0, ok); n["backend-a"] < min || n["backend-b"] < min {
				return fmt.Errorf("%s since %v: %v", what, t0.Format(time.StampMilli), n)
			}
			return nil
		}
	}
	began := time.Now()
	clitest.Eventually(t, 30*time.Second, atLeast(began, succeeded, 5, "successes"))
	t.Logf("load running; PostgreSQL %s at %v", o.name, time.Now().Format(time.StampMilli))

	// Outage.
	o.begin(srv)
	down := time.Now()
	clitest.Eventually(t, 30*time.Second, atLeast(down, unavailable, o.min503, "503s"))
	t.Logf("503s seen at %v", time.Now().Format(time.StampMilli))
	for _, b := range backends {
		r := user.must("GET", b.url+"/healthz", nil, http.StatusServiceUnavailable)
		var h map[string]string
		r.decode(t, &h)
		if !strings.HasPrefix(h["error"], o.wantCause) || h["status"] != "unavailable" {
			t.Errorf("%s healthz while PostgreSQL is %s: %s", b.name, o.name, r.body)
		}
		if strings.Contains(string(r.body), srv.Password) || strings.Contains(string(r.body), "127.0.0.1") {
			t.Errorf("%s healthz shows connection details: %s", b.name, r.body)
		}
	}

	// Recovery: the same processes serve again within 5 s of the server's
	// return, its own start-up included.
	up := time.Now()
	o.end(srv)
	t.Logf("PostgreSQL back at %v", time.Now().Format(time.StampMilli))
	clitest.Eventually(t, 5*time.Second, atLeast(up, succeeded, 5, "successes"))
	recovered := time.Since(up)
	for _, b := range backends {
		user.must("GET", b.url+"/healthz", nil, http.StatusOK)
		user.must("GET", b.url+"/api/user", nil, http.StatusOK)
	}
	stopLoad()

	// Every answer, in every phase, was a success or a 503 JSON error, and
	// came within the limit.
	statuses := map[int]int{}
	var slowest time.Duration
	for _, oc := range rec.since(began) {
		slowest = max(slowest, oc.took)
		if oc.err != nil {
			t.Errorf("%s at %v: no answer after %v: %v", oc.backend, oc.at.Format(time.StampMilli), oc.took, oc.err)
			continue
		}
		statuses[oc.status]++
		switch oc.status {
		case http.StatusOK, http.StatusCreated:
		case http.StatusServiceUnavailable:
			var v map[string]string
			if err := json.Unmarshal([]byte(oc.body), &v); err != nil || !strings.HasPrefix(v["error"], "store unavailable: ") {
				t.Errorf("%s: 503 body %q", oc.backend, oc.body)
			}
		default:
			t.Errorf("%s at %v: status %d: %s", oc.backend, oc.at.Format(time.StampMilli), oc.status, oc.body)
		}
	}
	t.Logf("%s: statuses %v; slowest answer %v; success through both backends %v after the server's return",
		o.name, statuses, slowest.Round(time.Millisecond), recovered.Round(time.Millisecond))
	if slowest > o.slowest {
		t.Errorf("slowest answer took %v, limit %v", slowest, o.slowest)
	}

	for i, b := range backends {
		select {
		case <-b.Done():
			t.Fatalf("%s exited:\n%s", b.name, b.Output())
		default:
		}
		if b.Pid() != pids[i] {
			t.Errorf("%s was restarted", b.name)
		}
		if strings.Contains(b.Output(), srv.Password) {
			t.Errorf("%s logged the password:\n%s", b.name, b.Output())
		}
	}
}

// TestPostgres_StartupErrors: a backend that cannot reach or parse its
// database says so in one line, without the password, and exits 1 or 2.
func TestPostgres_StartupErrors(t *testing.T) {
	const secret = "n0t-the-real-pw"
	for _, tc := range []struct {
		db   string
		code int
		want string
	}{
		{"postgres://poster:" + secret + "@127.0.0.1:1/poster?sslmode=disable", 1, "postgres://poster:xxxxx@127.0.0.1:1/poster"},
		{"postgres://poster:" + secret + "@127.0.0.1:port/poster", 2, "invalid --db: invalid connection string"},
		{"mysql://poster:" + secret + "@127.0.0.1/poster", 2, "unsupported database URL scheme"},
	} {
		out, code := clitest.Run(t, 30*time.Second, bin, "backend", "--port", strconv.Itoa(clitest.FreePort(t)), "--db", tc.db)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("--db %s: exit %d, want %d with %q:\n%s", tc.db, code, tc.code, tc.want, out)
		}
		if strings.Contains(out, secret) {
			t.Errorf("--db %s: output shows the password:\n%s", tc.db, out)
		}
	}
}
