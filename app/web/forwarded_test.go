package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/posterctl/posterctl/app/sqlite"
	"github.com/posterctl/posterctl/app/web"
	"github.com/posterctl/posterctl/fwdauth"
)

// X-Forwarded-Proto and X-Forwarded-For count only on a request that
// carries the proxy secret: a Secure cookie, and the address the rate limits
// and the access log use.
func TestForwarded(t *testing.T) {
	login := func(e *env, hdr ...string) (secure bool, client string) {
		t.Helper()
		before := len(e.logBuf.String())
		r := e.doJSON(nil, "POST", "/api/login", map[string]string{"username": "kim", "password": "kim-password"}, hdr...)
		if r.status != http.StatusOK {
			t.Fatalf("login with %q: %d %s", hdr, r.status, r.body)
		}
		sc := r.header.Get("Set-Cookie")
		if sc == "" {
			t.Fatalf("login with %q: no cookie", hdr)
		}
		line := e.logBuf.String()[before:]
		if i := strings.Index(line, `"client":"`); i >= 0 {
			client, _, _ = strings.Cut(line[i+len(`"client":"`):], `"`)
		}
		if strings.Contains(line, testSecret) {
			t.Fatalf("the proxy secret reached the log:\n%s", line)
		}
		return strings.Contains(sc, "Secure"), client
	}
	newEnvSecret := func(secret string) *env {
		e := newEnvWith(t, func(s *web.Server, _ *sqlite.DB) { s.ProxySecret = secret })
		wantStatus(t, e.doJSON(nil, "POST", "/api/register", map[string]string{"username": "kim", "password": "kim-password"}), http.StatusCreated)
		return e
	}
	fwd := []string{"X-Forwarded-Proto", "https", "X-Forwarded-For", "192.0.2.1, 198.51.100.77"}

	for _, tc := range []struct {
		name   string
		secret string
		hdr    []string
		secure bool
		client string
	}{
		{"NoSecretConfigured", "", fwd, false, "127.0.0.1"},
		{"NoSecretConfiguredEmptyHeader", "", append([]string{fwdauth.Header, ""}, fwd...), false, "127.0.0.1"},
		{"NoSecretSent", testSecret, fwd, false, "127.0.0.1"},
		{"WrongSecret", testSecret, append([]string{fwdauth.Header, testSecret + "x"}, fwd...), false, "127.0.0.1"},
		{"FromLB", testSecret, append([]string{fwdauth.Header, testSecret}, fwd...), true, "198.51.100.77"},
		{"FromLBPlainHTTP", testSecret, []string{fwdauth.Header, testSecret, "X-Forwarded-Proto", "http", "X-Forwarded-For", "2001:db8::5"}, false, "2001:db8::5"},
		{"FromLBNoForwardedFor", testSecret, []string{fwdauth.Header, testSecret}, false, "127.0.0.1"},
		{"FromLBBadForwardedFor", testSecret, []string{fwdauth.Header, testSecret, "X-Forwarded-For", "not-an-address"}, false, "127.0.0.1"},
		{"FromLBPortInForwardedFor", testSecret, []string{fwdauth.Header, testSecret, "X-Forwarded-For", "[2001:db8::6]:443"}, false, "2001:db8::6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvSecret(tc.secret)
			secure, client := login(e, tc.hdr...)
			if secure != tc.secure || client != tc.client {
				t.Fatalf("secure %v client %q, want %v %q", secure, client, tc.secure, tc.client)
			}
		})
	}

	// Two copies of the secret header are not the load balancer's one.
	t.Run("TwoSecretHeaders", func(t *testing.T) {
		e := newEnvSecret(testSecret)
		req, err := http.NewRequest("POST", e.ts.URL+"/api/login", strings.NewReader(`{"username":"kim","password":"kim-password"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Add(fwdauth.Header, testSecret)
		req.Header.Add(fwdauth.Header, testSecret)
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if sc := resp.Header.Get("Set-Cookie"); resp.StatusCode != http.StatusOK || strings.Contains(sc, "Secure") {
			t.Fatalf("status %d, Set-Cookie %q: want 200 without Secure", resp.StatusCode, sc)
		}
	})

	// Without the secret, X-Forwarded-For cannot buy a fresh address: the
	// failures count against the real peer.
	t.Run("RateLimitIgnoresForgedAddress", func(t *testing.T) {
		e := newEnvWith(t, func(s *web.Server, _ *sqlite.DB) { s.Limits = web.Limits{LoginFailures: 2} })
		wantStatus(t, e.doJSON(nil, "POST", "/api/register", map[string]string{"username": "lee", "password": "lee-password"}), http.StatusCreated)
		for i, a := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
			r := e.doJSON(nil, "POST", "/api/login", map[string]string{"username": "lee", "password": "wrong-password"}, "X-Forwarded-For", a)
			want := http.StatusUnauthorized
			if i == 2 {
				want = http.StatusTooManyRequests
			}
			wantStatus(t, r, want)
		}
	})
}
