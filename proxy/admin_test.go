package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/posterctl/posterctl/lbapi"
)

// admin calls the admin API and decodes a backend list.
func adminList(t testing.TB, c *http.Client, lb *Server) lbapi.AdminBackends {
	t.Helper()
	r := do(t, c, "GET", healthURL(lb, "/admin/backends"), nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /admin/backends: %d %s", r.status, r.body)
	}
	var l lbapi.AdminBackends
	if err := json.Unmarshal([]byte(r.body), &l); err != nil {
		t.Fatalf("GET /admin/backends body %q: %v", r.body, err)
	}
	return l
}

func states(l lbapi.AdminBackends) map[string]string {
	m := map[string]string{}
	for _, b := range l.Backends {
		m[b.Address] = b.State
	}
	return m
}

func putSet(t testing.TB, c *http.Client, lb *Server, addrs ...string) result {
	t.Helper()
	body, _ := json.Marshal(map[string][]string{"backends": addrs})
	return do(t, c, "PUT", healthURL(lb, "/admin/backends"), strings.NewReader(string(body)))
}

func TestAdminList(t *testing.T) {
	a, b := testBackend(t, "a", nil), testBackend(t, "b", nil)
	lb, _ := startLB(t, Config{}, hostport(a), "http://"+hostport(b))
	c := newClient(t)
	do(t, c, "GET", lbURL(lb, "/"), nil)
	r := do(t, c, "GET", healthURL(lb, "/admin/backends"), nil)
	var raw struct {
		Backends []map[string]any `json:"backends"`
	}
	if err := json.Unmarshal([]byte(r.body), &raw); err != nil || len(raw.Backends) != 2 {
		t.Fatalf("body %q: %v", r.body, err)
	}
	want := map[string]any{"address": hostport(a), "name": hostport(a), "state": "healthy", "in_flight": 0.0, "requests": 1.0, "failures": 0.0}
	if !reflect.DeepEqual(raw.Backends[0], want) {
		t.Fatalf("entry %v, want exactly %v", raw.Backends[0], want)
	}
	if raw.Backends[1]["address"] != hostport(b) || raw.Backends[1]["requests"] != 0.0 {
		t.Fatalf("entry %v", raw.Backends[1])
	}

	// /health names the state of each backend and the balancer's pid.
	var h lbapi.Health
	hr := do(t, c, "GET", healthURL(lb, "/health"), nil)
	if err := json.Unmarshal([]byte(hr.body), &h); err != nil || h.PID != os.Getpid() || h.Backends[0].State != "healthy" {
		t.Fatalf("/health %s (%v)", hr.body, err)
	}
}

func TestAdminDrainAndEnable(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	var releaseOnce sync.Once
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	a := testBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, "a")
	})
	// Registered after a's server, so it runs first: a failed check must not
	// leave the handler, and so that server's cleanup, waiting for ever.
	t.Cleanup(letGo)
	b := testBackend(t, "b", nil)
	lb, _ := startLB(t, Config{HealthInterval: 20 * time.Millisecond, HealthDownInterval: 10 * time.Millisecond},
		hostport(a), hostport(b))
	c := newClient(t)

	// A request in flight on a, then drain a.
	slow := make(chan result, 1)
	go func() { slow <- do(t, newClient(t), "GET", lbURL(lb, "/slow"), nil) }()
	<-arrived
	r := do(t, c, "POST", healthURL(lb, "/admin/backends/"+hostport(a)+"/drain"), nil)
	var e lbapi.AdminBackend
	if r.status != 200 || json.Unmarshal([]byte(r.body), &e) != nil || e.State != "draining" || e.InFlight != 1 || e.Address != hostport(a) {
		t.Fatalf("drain: %d %s", r.status, r.body)
	}
	for i := range 6 {
		if got := do(t, c, "GET", lbURL(lb, "/"), nil); got.header.Get("X-Backend") != "b" {
			t.Fatalf("request %d after the drain went to %q", i, got.header.Get("X-Backend"))
		}
	}
	// Probes keep passing; the drain must outlast several of them. (Measured
	// from now, not from the last check, which is nil before the first probe.)
	drained := time.Now()
	clitest.Eventually(t, 5*time.Second, func() error {
		if now := lb.Backends()[0].Status().LastCheck; now == nil || !now.After(drained.Add(60*time.Millisecond)) {
			return errors.New("no new probes yet")
		}
		return nil
	})
	if s := states(adminList(t, c, lb)); s[hostport(a)] != "draining" {
		t.Fatalf("health checks undid the drain: %v", s)
	}
	var h lbapi.Health
	json.Unmarshal([]byte(do(t, c, "GET", healthURL(lb, "/health"), nil).body), &h)
	if h.Backends[0].State != "draining" || h.Status != "ok" {
		t.Fatalf("/health during the drain: %+v", h)
	}
	// The in-flight request finishes, and in_flight falls to 0.
	letGo()
	if got := <-slow; got.status != 200 || got.body != "a" {
		t.Fatalf("in-flight request: %d %q", got.status, got.body)
	}
	clitest.Eventually(t, 5*time.Second, func() error {
		if l := adminList(t, c, lb); l.Backends[0].InFlight != 0 {
			return fmt.Errorf("in_flight %d", l.Backends[0].InFlight)
		}
		return nil
	})

	// Draining twice is fine; enable brings a healthy backend back at once.
	if r := do(t, c, "POST", healthURL(lb, "/admin/backends/"+url.PathEscape(hostport(a))+"/drain"), nil); r.status != 200 {
		t.Fatalf("second drain %d %s", r.status, r.body)
	}
	r = do(t, c, "POST", healthURL(lb, "/admin/backends/http:%2F%2F"+hostport(a)+"/enable"), nil)
	if r.status != 200 || json.Unmarshal([]byte(r.body), &e) != nil || e.State != "healthy" {
		t.Fatalf("enable: %d %s", r.status, r.body)
	}
	seen := map[string]int{}
	for range 4 {
		seen[do(t, c, "GET", lbURL(lb, "/"), nil).header.Get("X-Backend")]++
	}
	if seen["a"] != 2 || seen["b"] != 2 {
		t.Fatalf("after enable: %v", seen)
	}
	kinds := []string{}
	for _, ev := range lb.events.recent() {
		kinds = append(kinds, ev.Kind)
	}
	if !reflect.DeepEqual(kinds, []string{"enabled", "draining"}) {
		t.Fatalf("events newest first %v", kinds)
	}
}

func TestAdminEnableWaitsForHealth(t *testing.T) {
	a, b := testBackend(t, "a", nil), testBackend(t, "b", nil)
	lb, _ := startLB(t, Config{HealthInterval: 20 * time.Millisecond, HealthDownInterval: 10 * time.Millisecond},
		hostport(a), hostport(b))
	c := newClient(t)
	do(t, c, "POST", healthURL(lb, "/admin/backends/"+hostport(a)+"/drain"), nil)
	a.Close() // stopped while drained, as a rolling restart does
	clitest.Eventually(t, 5*time.Second, func() error {
		if st := lb.Backends()[0].Status(); st.Healthy {
			return errors.New("still healthy")
		}
		return nil
	})
	r := do(t, c, "POST", healthURL(lb, "/admin/backends/"+hostport(a)+"/enable"), nil)
	if r.status != 200 || !strings.Contains(r.body, `"state": "down"`) {
		t.Fatalf("enable of a stopped backend: %d %s", r.status, r.body)
	}
	for i := range 4 {
		if got := do(t, c, "GET", lbURL(lb, "/"), nil); got.status != 200 || got.header.Get("X-Backend") != "b" {
			t.Fatalf("request %d: %d from %q", i, got.status, got.header.Get("X-Backend"))
		}
	}
}

func TestAdminReplaceSet(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	a := testBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, "a")
	})
	b, cNew := testBackend(t, "b", nil), testBackend(t, "c", nil)
	lb, _ := startLB(t, Config{HealthInterval: 20 * time.Millisecond, HealthDownInterval: 10 * time.Millisecond},
		hostport(a), hostport(b))
	c := newClient(t)
	for range 4 {
		do(t, c, "GET", lbURL(lb, "/"), nil)
	}
	slow := make(chan result, 1)
	go func() { slow <- do(t, newClient(t), "GET", lbURL(lb, "/slow"), nil) }()
	<-arrived

	// Replace a, b by b, c: a drains with its request, c joins once healthy.
	r := putSet(t, c, lb, hostport(b), "http://"+hostport(cNew))
	var l lbapi.AdminBackends
	if r.status != 200 || json.Unmarshal([]byte(r.body), &l) != nil || len(l.Backends) != 3 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	if l.Backends[0].Address != hostport(b) || l.Backends[0].Requests != 2 || l.Backends[0].State != "healthy" {
		t.Fatalf("b lost its state or counters: %+v", l.Backends[0])
	}
	if l.Backends[1].Address != hostport(cNew) || l.Backends[1].State != "down" {
		t.Fatalf("new backend %+v, want down until its health check passes", l.Backends[1])
	}
	if l.Backends[2].Address != hostport(a) || l.Backends[2].State != "draining" || l.Backends[2].InFlight != 1 {
		t.Fatalf("removed backend %+v, want draining with 1 in flight", l.Backends[2])
	}
	clitest.Eventually(t, 5*time.Second, func() error {
		if s := states(adminList(t, c, lb)); s[hostport(cNew)] != "healthy" {
			return fmt.Errorf("states %v", s)
		}
		return nil
	})
	seen := map[string]int{}
	for range 6 {
		seen[do(t, c, "GET", lbURL(lb, "/"), nil).header.Get("X-Backend")]++
	}
	if seen["b"] != 3 || seen["c"] != 3 {
		t.Fatalf("after the change: %v, want b and c 3 each", seen)
	}
	// a is still listed until its last request ends, then it is gone.
	if s := states(adminList(t, c, lb)); s[hostport(a)] != "draining" {
		t.Fatalf("a left with a request in flight: %v", s)
	}
	close(release)
	if got := <-slow; got.status != 200 || got.body != "a" {
		t.Fatalf("in-flight request on the removed backend: %d %q", got.status, got.body)
	}
	clitest.Eventually(t, 5*time.Second, func() error {
		if l := adminList(t, c, lb); len(l.Backends) != 2 {
			return fmt.Errorf("still %d backends listed", len(l.Backends))
		}
		return nil
	})
	if r := do(t, c, "POST", healthURL(lb, "/admin/backends/"+hostport(a)+"/drain"), nil); r.status != 404 || !strings.Contains(jsonError(t, r), "no backend") {
		t.Fatalf("drain of a removed backend: %d %s", r.status, r.body)
	}
	var kinds []string
	for _, ev := range lb.events.recent() {
		kinds = append(kinds, ev.Backend+" "+ev.Kind)
	}
	want := []string{hostport(a) + " removed", hostport(cNew) + " up", hostport(a) + " draining", hostport(cNew) + " added"}
	if !reflect.DeepEqual(kinds, want) {
		t.Fatalf("events %q, want %q", kinds, want)
	}
}

func TestAdminBadInput(t *testing.T) {
	a := testBackend(t, "a", nil)
	lb, _ := startLB(t, Config{}, hostport(a))
	c := newClient(t)
	before := adminList(t, c, lb)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"NotJSON", "PUT", "/admin/backends", `backends=1`, 400, "malformed body"},
		{"Empty", "PUT", "/admin/backends", ``, 400, "empty body"},
		{"Truncated", "PUT", "/admin/backends", `{"backends":["127.0.0.1:1"`, 400, "malformed body"},
		{"Trailing", "PUT", "/admin/backends", `{"backends":["127.0.0.1:1"]} {}`, 400, "data after"},
		{"UnknownField", "PUT", "/admin/backends", `{"backends":["127.0.0.1:1"],"weight":2}`, 400, `unknown field "weight"`},
		{"NoBackendsField", "PUT", "/admin/backends", `{}`, 400, "at least one"},
		{"NullBackends", "PUT", "/admin/backends", `{"backends":null}`, 400, "at least one"},
		{"EmptyList", "PUT", "/admin/backends", `{"backends":[]}`, 400, "at least one"},
		{"NotAList", "PUT", "/admin/backends", `{"backends":"127.0.0.1:1"}`, 400, "malformed body"},
		{"NotStrings", "PUT", "/admin/backends", `{"backends":[3001]}`, 400, "malformed body"},
		{"NotHostPort", "PUT", "/admin/backends", `{"backends":["127.0.0.1:1","localhost"]}`, 400, `backend "localhost": want host:port`},
		{"BadPort", "PUT", "/admin/backends", `{"backends":["127.0.0.1:99999"]}`, 400, "port"},
		{"HTTPS", "PUT", "/admin/backends", `{"backends":["https://127.0.0.1:1"]}`, 400, "not supported"},
		{"Duplicate", "PUT", "/admin/backends", `{"backends":["127.0.0.1:1","http://127.0.0.1:1"]}`, 400, "given twice"},
		{"BadName", "PUT", "/admin/backends", `{"backends":["back end=127.0.0.1:1"]}`, 400, `backend name "back end"`},
		{"BadNameInObject", "PUT", "/admin/backends", `{"backends":[{"address":"127.0.0.1:1","name":"<b>"}]}`, 400, `backend name "<b>"`},
		{"NameTwice", "PUT", "/admin/backends", `{"backends":["x=127.0.0.1:1",{"address":"127.0.0.1:2","name":"x"}]}`, 400, "backend name x given to both 127.0.0.1:1 and 127.0.0.1:2"},
		{"UnknownEntryField", "PUT", "/admin/backends", `{"backends":[{"address":"127.0.0.1:1","weight":2}]}`, 400, `unknown field "weight"`},
		{"NoAddressInObject", "PUT", "/admin/backends", `{"backends":[{"name":"x"}]}`, 400, "backend address is empty"},
		{"NullEntry", "PUT", "/admin/backends", `{"backends":[null]}`, 400, "malformed body"},
		{"TooMany", "PUT", "/admin/backends", tooMany(), 400, "at most 64"},
		{"TooLarge", "PUT", "/admin/backends", `{"backends":["` + strings.Repeat("x", 70<<10) + `"]}`, 400, "over 64 KiB"},
		{"UnknownDrain", "POST", "/admin/backends/127.0.0.1:1/drain", ``, 404, "no backend 127.0.0.1:1"},
		{"UnknownEnable", "POST", "/admin/backends/127.0.0.1:1/enable", ``, 404, "no backend"},
		{"BadAddrInPath", "POST", "/admin/backends/nonsense/drain", ``, 400, "want host:port"},
		{"UnknownAction", "POST", "/admin/backends/" + hostport(a) + "/restart", ``, 404, "no admin route"},
		{"UnknownRoute", "GET", "/admin/nothing", ``, 404, "no admin route"},
		{"PostSet", "POST", "/admin/backends", `{"backends":["127.0.0.1:1"]}`, 405, "use GET or PUT"},
		{"DeleteSet", "DELETE", "/admin/backends", ``, 405, "use GET or PUT"},
		{"GetDrain", "GET", "/admin/backends/" + hostport(a) + "/drain", ``, 405, "use POST"},
		{"PutEnable", "PUT", "/admin/backends/" + hostport(a) + "/enable", ``, 405, "use POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, c, tc.method, healthURL(lb, tc.path), strings.NewReader(tc.body))
			if r.status != tc.status {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, r.status, r.body, tc.status)
			}
			if msg := jsonError(t, r); !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q, want it to mention %q", msg, tc.want)
			}
			if tc.status == 405 && r.header.Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
			if after := adminList(t, c, lb); !reflect.DeepEqual(after, before) {
				t.Fatalf("set changed by a bad call: %+v, was %+v", after, before)
			}
		})
	}
	if n := len(lb.events.recent()); n != 0 {
		t.Fatalf("%d events after bad calls only", n)
	}
}

func tooMany() string {
	var addrs []string
	for i := range lbapi.MaxBackends + 1 {
		addrs = append(addrs, fmt.Sprintf(`"127.0.0.1:%d"`, 2000+i))
	}
	return `{"backends":[` + strings.Join(addrs, ",") + `]}`
}

// TestAdminOnlyOnHealthPort: the public port passes /admin to the backends
// like any path; only the loopback health port has the API, and there it
// refuses requests a browser could be tricked into sending.
func TestAdminOnlyOnHealthPort(t *testing.T) {
	var paths sync.Map
	a := testBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		paths.Store(r.Method+" "+r.URL.Path, true)
		w.WriteHeader(http.StatusNotFound)
	})
	lb, _ := startLB(t, Config{}, hostport(a))
	c := newClient(t)
	before := adminList(t, c, lb)
	for _, m := range []string{"GET", "PUT"} {
		r := do(t, c, m, lbURL(lb, "/admin/backends"), strings.NewReader(`{"backends":["127.0.0.1:1"]}`))
		if r.status != 404 || r.header.Get("X-Backend") != "a" {
			t.Fatalf("%s /admin/backends on the public port: %d from %q", m, r.status, r.header.Get("X-Backend"))
		}
		if _, ok := paths.Load(m + " /admin/backends"); !ok {
			t.Fatalf("%s /admin/backends on the public port did not reach the backend", m)
		}
	}
	r := do(t, c, "POST", lbURL(lb, "/admin/backends/"+hostport(a)+"/drain"), nil)
	if r.header.Get("X-Backend") != "a" {
		t.Fatalf("drain on the public port answered by the balancer: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		name string
		hdr  []string
		want string
	}{
		{"CrossOrigin", []string{"Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"}, "cross-origin"},
		{"ReboundName", []string{"Host", "evil.example"}, `host "evil.example" refused`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, c, "POST", healthURL(lb, "/admin/backends/"+hostport(a)+"/drain"), nil, tc.hdr...)
			if r.status != 403 || !strings.Contains(jsonError(t, r), tc.want) {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
	if after := states(adminList(t, c, lb)); !reflect.DeepEqual(after, states(before)) {
		t.Fatalf("set changed: %v, was %v", after, states(before))
	}
	if !loopbackAddr("[::1]:5") || loopbackAddr("10.0.0.1:5") || loopbackAddr("nonsense") {
		t.Fatal("loopbackAddr")
	}
}

// TestReplaceUnderLoad changes the set again and again while requests flow:
// with every backend alive, none may fail, and -race checks the hot path
// against the swaps.
func TestReplaceUnderLoad(t *testing.T) {
	a, b, cc := testBackend(t, "a", nil), testBackend(t, "b", nil), testBackend(t, "c", nil)
	lb, _ := startLB(t, Config{HealthInterval: 20 * time.Millisecond, HealthDownInterval: 5 * time.Millisecond},
		hostport(a), hostport(b))
	admin := newClient(t)
	var sent, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc := &rawClient{addr: lb.Addr(), timeout: 10 * time.Second}
			defer rc.close()
			req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			var resp rawResponse
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				if err := rc.do(req, &resp); err != nil || resp.status != 200 {
					failed.Add(1)
					t.Errorf("request: %v status %d %s", err, resp.status, resp.body)
					return
				}
			}
		}()
	}
	// Consecutive sets share a backend: a new one serves only once healthy,
	// so a set of new backends alone would rightly answer 503 for a moment.
	sets := [][]string{{hostport(a)}, {hostport(a), hostport(b), hostport(cc)}, {hostport(cc), hostport(b)}, {hostport(b), hostport(a)}}
	changes := 0
	for ; changes < 400 && (changes < 12 || sent.Load() < 5000); changes++ {
		set := sets[changes%len(sets)]
		if r := putSet(t, admin, lb, set...); r.status != 200 {
			t.Fatalf("PUT: %d %s", r.status, r.body)
		}
		clitest.Eventually(t, 5*time.Second, func() error {
			s := states(adminList(t, admin, lb))
			for _, addr := range set {
				if s[addr] != "healthy" {
					return fmt.Errorf("states %v", s)
				}
			}
			return nil
		})
	}
	close(stop)
	wg.Wait()
	t.Logf("%d requests during %d set changes, %d failed", sent.Load(), changes, failed.Load())
	if sent.Load() < 100 {
		t.Fatalf("only %d requests sent", sent.Load())
	}
}

// TestAdminReAddWhileDraining: a backend removed and asked back before its
// last request ended (scale down, then up again) is the same backend again,
// listed once, with its counters, and serves at once since it is healthy.
func TestAdminReAddWhileDraining(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	a := testBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, "a")
	})
	b := testBackend(t, "b", nil)
	lb, _ := startLB(t, Config{}, hostport(a), hostport(b))
	c := newClient(t)
	slow := make(chan result, 1)
	go func() { slow <- do(t, newClient(t), "GET", lbURL(lb, "/slow"), nil) }()
	<-arrived
	defer func() {
		close(release)
		<-slow
	}()
	if r := putSet(t, c, lb, hostport(b)); r.status != 200 || !strings.Contains(r.body, `"state": "draining"`) {
		t.Fatalf("PUT [b]: %d %s", r.status, r.body)
	}
	r := putSet(t, c, lb, hostport(a), hostport(b))
	var l lbapi.AdminBackends
	if r.status != 200 || json.Unmarshal([]byte(r.body), &l) != nil || len(l.Backends) != 2 {
		t.Fatalf("PUT [a b]: %d %s", r.status, r.body)
	}
	if got := l.Backends[0]; got.Address != hostport(a) || got.State != "healthy" || got.InFlight != 1 || got.Requests != 1 {
		t.Fatalf("re-added backend %+v, want the same one back: healthy, its request still in flight", got)
	}
	seen := map[string]int{}
	for range 4 {
		seen[do(t, c, "GET", lbURL(lb, "/"), nil).header.Get("X-Backend")]++
	}
	if seen["a"] != 2 || seen["b"] != 2 {
		t.Fatalf("after re-adding: %v", seen)
	}
}
