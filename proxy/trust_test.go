package proxy

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/posterctl/posterctl/fwdauth"
)

// TestForwardedTrust: a backend gets exactly the balancer's proxy secret,
// never a client's copy; X-Forwarded-For ends with the peer the balancer
// saw; X-Forwarded-Proto is the listener's own scheme unless the peer is a
// trusted proxy.
func TestForwardedTrust(t *testing.T) {
	const secret = "cluster-secret-0123456789abcdef"
	seen := make(chan http.Header, 1)
	be := testBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		io.WriteString(w, "{}")
	})
	client := newClient(t)
	forged := []string{fwdauth.Header, "forged", strings.ToLower(fwdauth.Header), "forged-too",
		"X-Forwarded-For", "203.0.113.7", "X-Forwarded-Proto", "https"}

	for _, tc := range []struct {
		name       string
		cfg        Config
		wantSecret []string
		wantProto  string
	}{
		{"Untrusted", Config{ProxySecret: secret}, []string{secret}, "http"},
		{"OtherTrusted", Config{ProxySecret: secret, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, []string{secret}, "http"},
		{"Trusted", Config{ProxySecret: secret, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, []string{secret}, "https"},
		{"NoSecret", Config{}, nil, "http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lb, _ := startLB(t, tc.cfg, hostport(be))
			if r := do(t, client, "GET", lbURL(lb, "/x"), nil, forged...); r.status != 200 {
				t.Fatalf("status %d %s", r.status, r.body)
			}
			h := <-seen
			if got := h.Values(fwdauth.Header); !reflect.DeepEqual(got, tc.wantSecret) {
				t.Errorf("backend saw %s = %q, want %q", fwdauth.Header, got, tc.wantSecret)
			}
			if got := h.Get("X-Forwarded-For"); got != "203.0.113.7, 127.0.0.1" {
				t.Errorf("X-Forwarded-For = %q", got)
			}
			if got := h.Values("X-Forwarded-Proto"); len(got) != 1 || got[0] != tc.wantProto {
				t.Errorf("X-Forwarded-Proto = %q, want %q", got, tc.wantProto)
			}
			if got := h.Get("Forwarded"); !strings.HasSuffix(got, ";proto="+tc.wantProto) {
				t.Errorf("Forwarded = %q, want proto=%s", got, tc.wantProto)
			}
		})
	}
}

// TestAdminToken: every admin route wants the bearer token; without it, or
// with a wrong one, 401 JSON and the set stays as it was. A balancer without
// a token has no admin API at all.
func TestAdminToken(t *testing.T) {
	a, b := testBackend(t, "a", nil), testBackend(t, "b", nil)
	lb, _ := startLB(t, Config{}, hostport(a))
	c := newClient(t)
	before := states(adminList(t, c, lb))
	calls := []struct{ method, path, body string }{
		{"GET", "/admin/backends", ""},
		{"PUT", "/admin/backends", `{"backends":["` + hostport(b) + `"]}`},
		{"POST", "/admin/backends/" + hostport(a) + "/drain", ""},
		{"POST", "/admin/backends/" + hostport(a) + "/enable", ""},
		{"GET", "/admin/nothing", ""},
	}
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + testAdminToken + "x", "Basic " + testAdminToken, testAdminToken} {
		for _, call := range calls {
			r := do(t, c, call.method, healthURL(lb, call.path), strings.NewReader(call.body), "Authorization", auth)
			if r.status != 401 || !strings.Contains(jsonError(t, r), "admin token") || r.header.Get("WWW-Authenticate") == "" {
				t.Fatalf("%s %s with Authorization %q: %d %s", call.method, call.path, auth, r.status, r.body)
			}
		}
	}
	if after := states(adminList(t, c, lb)); !reflect.DeepEqual(after, before) {
		t.Fatalf("set changed without the token: %v, was %v", after, before)
	}
	if r := putSet(t, c, lb, hostport(b)); r.status != 200 {
		t.Fatalf("PUT with the token: %d %s", r.status, r.body)
	}

	t.Run("Disabled", func(t *testing.T) {
		cfg := Config{Listen: "127.0.0.1:0", HealthListen: "127.0.0.1:0", Backends: []string{hostport(a)}}
		s, err := NewServer(cfg, zerolog.Nop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Open(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s.Close(ctx)
		})
		for _, auth := range []string{"", "Bearer ", "Bearer " + testAdminToken} {
			for _, call := range calls {
				r := do(t, c, call.method, healthURL(s, call.path), strings.NewReader(call.body), "Authorization", auth)
				if r.status != 403 || !strings.Contains(jsonError(t, r), "disabled") {
					t.Fatalf("%s %s: %d %s", call.method, call.path, r.status, r.body)
				}
			}
		}
		if got := s.Backends(); len(got) != 1 || got[0].Addr() != hostport(a) || got[0].State() != "healthy" && got[0].State() != "down" {
			t.Fatalf("set changed: %v", got)
		}
	})
}

// TestHealthPortHost: every route of the health port refuses a Host that is
// not this machine (DNS rebinding); loopback names and addresses work.
func TestHealthPortHost(t *testing.T) {
	a := testBackend(t, "a", nil)
	lb, _ := startLB(t, Config{}, hostport(a))
	c := newClient(t)
	_, port, _ := strings.Cut(lb.HealthAddr(), ":")
	for _, path := range []string{"/", "/api/stats", "/health", "/metrics", "/admin/backends", "/dashboard.js"} {
		for _, host := range []string{"evil.example", "evil.example:" + port, "127.0.0.1.nip.io:" + port, "10.1.2.3:" + port} {
			r := do(t, c, "GET", healthURL(lb, path), nil, "Host", host)
			if r.status != 403 || !strings.Contains(jsonError(t, r), "refused") {
				t.Fatalf("GET %s with Host %q: %d %s", path, host, r.status, r.body)
			}
		}
	}
	for _, path := range []string{"/health", "/metrics", "/api/stats", "/admin/backends"} {
		for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "LOCALHOST", "[::1]:" + port, "127.0.0.2"} {
			if r := do(t, c, "GET", healthURL(lb, path), nil, "Host", host); r.status != 200 {
				t.Fatalf("GET %s with Host %q: %d %s", path, host, r.status, r.body)
			}
		}
	}
}
