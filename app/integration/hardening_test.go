package integration

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clientFrom is an HTTP client whose connections leave from the loopback
// address local, so that a backend sees another client address than
// 127.0.0.1. The whole of 127.0.0.0/8 is loopback on Linux; elsewhere the
// test skips.
func clientFrom(t *testing.T, local string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	probe, err := net.Listen("tcp", net.JoinHostPort(local, "0"))
	if err != nil {
		t.Skipf("cannot use %s as a second loopback address here: %v", local, err)
	}
	probe.Close()
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
		},
	}
}

// TestBackend_LoginRateLimit is issue 12's rate-limit acceptance, with the
// default limits: 11 wrong passwords for one username from one address,
// alternating between two backends on one SQLite file, and the 11th is
// answered 429 with Retry-After by whichever backend gets it. The right
// password from another address still logs in at once.
func TestBackend_LoginRateLimit(t *testing.T) {
	db := dbPath(t)
	backends := []*backend{startBackend(t, db, "backend-a"), startBackend(t, db, "backend-b")}
	hc := newHTTPClient(4)
	defer hc.CloseIdleConnections()
	attacker := &client{tb: t, hc: hc}
	attacker.must("POST", backends[0].url+"/api/register",
		map[string]string{"username": "victim", "password": "right-password"}, http.StatusCreated)

	wrong := map[string]string{"username": "victim", "password": "wrong-password"}
	for i := range 10 {
		attacker.must("POST", backends[i%2].url+"/api/login", wrong, http.StatusUnauthorized)
	}
	for _, b := range []*backend{backends[0], backends[1]} {
		r := attacker.must("POST", b.url+"/api/login", wrong, http.StatusTooManyRequests)
		secs, err := strconv.Atoi(r.header.Get("Retry-After"))
		if err != nil || secs < 1 || secs > 15*60 {
			t.Fatalf("%s: Retry-After = %q, want 1 to 900 seconds", b.name, r.header.Get("Retry-After"))
		}
		var e struct{ Error string }
		r.decode(t, &e)
		if e.Error == "" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s: 429 body %s, Content-Type %q", b.name, r.body, r.header.Get("Content-Type"))
		}
	}

	owner := &client{tb: t, hc: clientFrom(t, "127.0.0.2")}
	defer owner.hc.CloseIdleConnections()
	owner.login(backends[1].url, "victim", "right-password")
	owner.must("GET", backends[0].url+"/api/user", nil, http.StatusOK)
}

// TestBackend_StoreFilesPrivate: the store a backend creates is the owner's
// alone, and X-Forwarded-Proto from a client that is not the cluster's load
// balancer does not make the session cookie Secure.
func TestBackend_StoreFilesPrivate(t *testing.T) {
	db := dbPath(t)
	b := startBackend(t, db, "backend-a")
	hc := newHTTPClient(2)
	defer hc.CloseIdleConnections()
	c := &client{tb: t, hc: hc}
	creds := map[string]string{"username": "alice", "password": "alice-password"}
	c.must("POST", b.url+"/api/register", creds, http.StatusCreated)

	r := c.must("POST", b.url+"/api/login", creds, http.StatusOK, "X-Forwarded-Proto", "https")
	if sc := r.header.Get("Set-Cookie"); sc == "" || strings.Contains(sc, "Secure") {
		t.Errorf("Set-Cookie = %q: want a cookie, not Secure", sc)
	}

	modes := map[string]os.FileMode{filepath.Dir(db): 0o700, db: 0o600, db + "-wal": 0o600, db + "-shm": 0o600}
	for p, want := range modes {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %04o, want %04o", p, got, want)
		}
	}
}
