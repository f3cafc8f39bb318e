package proxy

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/posterctl/posterctl/lbapi"
)

func TestDashboardServed(t *testing.T) {
	a := testBackend(t, "a", nil)
	lb, _ := startLB(t, Config{}, hostport(a))
	c := newClient(t)
	for _, tc := range []struct{ path, ctype, contains string }{
		{"/", "text/html", `<script src="/dashboard.js"`},
		{"/dashboard.js", "text/javascript", "textContent"},
		{"/dashboard.css", "text/css", "--ok"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
	} {
		r := do(t, c, "GET", healthURL(lb, tc.path), nil)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), tc.ctype) || !strings.Contains(r.body, tc.contains) {
			t.Fatalf("GET %s: %d %q", tc.path, r.status, r.header.Get("Content-Type"))
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Fatalf("GET %s: CSP %q", tc.path, csp)
		}
	}
	// No inline script: the page's policy would refuse it anyway.
	if page := do(t, c, "GET", healthURL(lb, "/"), nil).body; strings.Contains(page, "<script>") || strings.Contains(page, "innerHTML") {
		t.Fatal("inline script in the page")
	}
	if js := do(t, c, "GET", healthURL(lb, "/dashboard.js"), nil).body; strings.Contains(js, "innerHTML") || strings.Contains(js, "insertAdjacentHTML") {
		t.Fatal("the dashboard script writes HTML; server text must go through textContent")
	}
	if r := do(t, c, "GET", healthURL(lb, "/nothing"), nil); r.status != 404 {
		t.Fatalf("unknown path on the health port: %d", r.status)
	}
	// The public port has no dashboard: / goes to the backends.
	if r := do(t, c, "GET", lbURL(lb, "/"), nil); r.header.Get("X-Backend") != "a" {
		t.Fatalf("GET / on the public port answered by the balancer: %q", r.body)
	}
}

func TestDashboardStats(t *testing.T) {
	a, b := testBackend(t, "a", nil), testBackend(t, "b", nil)
	lb, _ := startLB(t, Config{}, hostport(a), hostport(b))
	c := newClient(t)
	do(t, c, "POST", healthURL(lb, "/admin/backends/"+hostport(b)+"/drain"), nil)
	var st lbapi.Stats
	clitest.Eventually(t, 10*time.Second, func() error {
		for range 20 {
			do(t, c, "GET", lbURL(lb, "/"), nil)
		}
		r := do(t, c, "GET", healthURL(lb, "/api/stats"), nil)
		st = lbapi.Stats{}
		if err := json.Unmarshal([]byte(r.body), &st); err != nil {
			return err
		}
		if len(st.Total) == 0 || len(st.Backends) != 2 || len(st.Backends[0].Samples) == 0 || st.Backends[0].Samples[len(st.Backends[0].Samples)-1].RPS == 0 {
			return errors.New("no sample with traffic yet")
		}
		return nil
	})
	ba, bb := st.Backends[0], st.Backends[1]
	last := ba.Samples[len(ba.Samples)-1]
	if ba.Address != hostport(a) || ba.State != "healthy" || last.P50 == nil || last.P99 == nil || *last.P99 < *last.P50 || last.ErrorRate != 0 {
		t.Fatalf("backend a %+v, last sample %+v", ba.BackendStatus, last)
	}
	if bb.State != "draining" || bb.Requests != 0 {
		t.Fatalf("drained backend %+v", bb.BackendStatus)
	}
	if st.PID != lb.pid || st.Listen != lb.Addr() || st.HealthListen != lb.HealthAddr() || st.Now < st.Started {
		t.Fatalf("stats header %+v", st)
	}
	if len(st.Events) != 1 || st.Events[0].Kind != "draining" || st.Events[0].Backend != hostport(b) {
		t.Fatalf("events %+v", st.Events)
	}
	if tot := st.Total[len(st.Total)-1]; tot.RPS < last.RPS {
		t.Fatalf("total %v req/s below one backend's %v", tot.RPS, last.RPS)
	}
}
