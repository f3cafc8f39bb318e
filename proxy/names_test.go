package proxy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/posterctl/posterctl/lbapi"
)

func TestParseBackendRef(t *testing.T) {
	for in, want := range map[string]lbapi.BackendRef{
		"127.0.0.1:3001":                {Address: "127.0.0.1:3001"},
		"backend-1=127.0.0.1:3001":      {Address: "127.0.0.1:3001", Name: "backend-1"},
		"web.eu_1=http://127.0.0.1:80/": {Address: "127.0.0.1:80", Name: "web.eu_1"},
		"127.0.0.1:3001=127.0.0.1:3001": {Address: "127.0.0.1:3001"}, // its address is no name
		" backend-1=127.0.0.1:3001":     {},                          // refused below: the space
	} {
		got, err := ParseBackendRef(in)
		if want == (lbapi.BackendRef{}) {
			if err == nil {
				t.Errorf("%q accepted as %+v", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"x y=127.0.0.1:1":  `backend 127.0.0.1:1: backend name "x y"`,
		"a=b=127.0.0.1:1":  `backend "b=127.0.0.1:1": a host has no "="`,
		"name=":            "backend address is empty",
		"backend-1=:3001":  "host is empty",
		"backend-1=a:port": "port",
	} {
		if _, err := ParseBackendRef(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: err %v, want it to mention %q", in, err, msg)
		}
	}
}

func TestConfigBackendNames(t *testing.T) {
	cfg := Config{Listen: "127.0.0.1:0", HealthListen: "127.0.0.1:0",
		Backends: []string{"backend-1=127.0.0.1:3001", "http://10.0.0.2:3001"}}
	cfg.SetDefaults()
	refs, err := cfg.Validate()
	want := []lbapi.BackendRef{{Address: "127.0.0.1:3001", Name: "backend-1"}, {Address: "10.0.0.2:3001"}}
	if err != nil || !slices.Equal(refs, want) {
		t.Fatalf("%+v, %v; want %+v", refs, err, want)
	}
	for backends, msg := range map[string]string{
		"a=127.0.0.1:1 a=127.0.0.1:2":   "backend name a given to both 127.0.0.1:1 and 127.0.0.1:2",
		"a=127.0.0.1:1 b=127.0.0.1:1":   "backend 127.0.0.1:1 given twice",
		"a=127.0.0.1:1 b/c=127.0.0.1:2": `backend name "b/c"`,
	} {
		cfg.Backends = strings.Fields(backends)
		if _, err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: err %v, want it to mention %q", backends, err, msg)
		}
	}
}

// TestBackendNames: names given on the command line and through the admin
// API show in /health, /admin/backends, /api/stats and the events; a PUT in
// the older form, addresses only, keeps them.
func TestBackendNames(t *testing.T) {
	a, b, cNew := testBackend(t, "a", nil), testBackend(t, "b", nil), testBackend(t, "c", nil)
	lb, _ := startLB(t, Config{}, "backend-1="+hostport(a), hostport(b))
	c := newClient(t)
	names := func() map[string]string {
		t.Helper()
		out := map[string]string{}
		for _, e := range adminList(t, c, lb).Backends {
			out[e.Address] = e.Name
		}
		// /health and /api/stats say the same.
		var h lbapi.Health
		if err := json.Unmarshal([]byte(do(t, c, "GET", healthURL(lb, "/health"), nil).body), &h); err != nil {
			t.Fatal(err)
		}
		var st lbapi.Stats
		if err := json.Unmarshal([]byte(do(t, c, "GET", healthURL(lb, "/api/stats"), nil).body), &st); err != nil {
			t.Fatal(err)
		}
		for _, e := range h.Backends {
			if out[e.Address] != e.Name {
				t.Fatalf("/health calls %s %q, the admin API %q", e.Address, e.Name, out[e.Address])
			}
		}
		for _, e := range st.Backends {
			if out[e.Address] != e.Name {
				t.Fatalf("/api/stats calls %s %q, the admin API %q", e.Address, e.Name, out[e.Address])
			}
		}
		return out
	}
	check := func(step string, want map[string]string) {
		t.Helper()
		if got := names(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: names %v, want %v", step, got, want)
		}
	}
	check("from the command line", map[string]string{hostport(a): "backend-1", hostport(b): hostport(b)})

	put := func(body string) {
		t.Helper()
		if r := do(t, c, "PUT", healthURL(lb, "/admin/backends"), strings.NewReader(body)); r.status != 200 {
			t.Fatalf("PUT %s: %d %s", body, r.status, r.body)
		}
	}
	// Mixed forms: b gets a name, c joins with one.
	put(fmt.Sprintf(`{"backends":[%q,{"address":%q,"name":"backend-2"},"backend-3=%s"]}`, hostport(a), hostport(b), hostport(cNew)))
	check("named by PUT", map[string]string{hostport(a): "backend-1", hostport(b): "backend-2", hostport(cNew): "backend-3"})
	// The older form, as a client that knows only addresses sends it.
	if r := putSet(t, c, lb, hostport(a), hostport(b), hostport(cNew)); r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	check("addresses only", map[string]string{hostport(a): "backend-1", hostport(b): "backend-2", hostport(cNew): "backend-3"})
	// The addresses and names GET answers can be PUT back, unnamed entries
	// (named by their address) included.
	lb2, _ := startLB(t, Config{}, "backend-1="+hostport(a), hostport(b))
	var refs lbapi.SetBackends
	for _, e := range adminList(t, c, lb2).Backends {
		refs.Backends = append(refs.Backends, lbapi.BackendRef{Address: e.Address, Name: e.Name})
	}
	body, _ := json.Marshal(refs)
	if r := do(t, c, "PUT", healthURL(lb2, "/admin/backends"), strings.NewReader(string(body))); r.status != 200 {
		t.Fatalf("PUT of GET's names %s: %d %s", body, r.status, r.body)
	}
	if got := adminList(t, c, lb2).Backends; got[0].Name != "backend-1" || got[1].Name != hostport(b) {
		t.Fatalf("after PUT of GET's names: %+v", got)
	}

	var added []string
	for _, ev := range lb.events.recent() {
		if ev.Kind == lbapi.EventAdded {
			added = append(added, ev.Name+" "+ev.Backend)
		}
	}
	if want := []string{"backend-3 " + hostport(cNew)}; !slices.Equal(added, want) {
		t.Fatalf("added events %q, want %q", added, want)
	}
}
