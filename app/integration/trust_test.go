package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app/sqlite"
	"github.com/posterctl/posterctl/fwdauth"
	"github.com/posterctl/posterctl/internal/clitest"
)

// TestBackend_TrustFlags: a backend on a store others could read tightens
// it and says so at warn; with --proxy-secret-file it believes
// X-Forwarded-Proto only from requests carrying that secret.
func TestBackend_TrustFlags(t *testing.T) {
	db := dbPath(t)
	s := sqlite.NewDB(db)
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for p, mode := range map[string]os.FileMode{filepath.Dir(db): 0o755, db: 0o644} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(t.TempDir(), "proxy-secret")
	const value = "proxy-secret-0123456789abcdef"
	if err := os.WriteFile(secret, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := clitest.FreePort(t)
	b := &backend{name: "backend-a", port: port, url: fmt.Sprintf("http://127.0.0.1:%d", port),
		Process: clitest.Start(t, bin, "backend", "--port", strconv.Itoa(port), "--db", db, "--name", "backend-a", "--proxy-secret-file", secret)}
	waitHealthy(t, b)

	clitest.Eventually(t, 10*time.Second, func() error {
		for _, l := range strings.Split(b.Output(), "\n") {
			var ev map[string]any
			if json.Unmarshal([]byte(l), &ev) == nil && ev["level"] == "warn" &&
				strings.Contains(fmt.Sprint(ev["message"]), "tightened "+db+" from mode 0644 to 0600") {
				return nil
			}
		}
		return fmt.Errorf("no warn line about the tightened store in:\n%s", b.Output())
	})
	for p, want := range map[string]os.FileMode{filepath.Dir(db): 0o700, db: 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, %v; want mode %04o", p, fi, err, want)
		}
	}

	hc := newHTTPClient(2)
	defer hc.CloseIdleConnections()
	c := &client{tb: t, hc: hc}
	creds := map[string]string{"username": "alice", "password": "alice-password"}
	c.must("POST", b.url+"/api/register", creds, http.StatusCreated)
	for _, tc := range []struct {
		name   string
		hdr    []string
		secure bool
	}{
		{"NoSecret", []string{"X-Forwarded-Proto", "https"}, false},
		{"WrongSecret", []string{"X-Forwarded-Proto", "https", fwdauth.Header, value + "x"}, false},
		{"Secret", []string{"X-Forwarded-Proto", "https", fwdauth.Header, value}, true},
	} {
		r := c.must("POST", b.url+"/api/login", creds, http.StatusOK, tc.hdr...)
		sc := r.header.Get("Set-Cookie")
		if got := strings.Contains(sc, "Secure"); sc == "" || got != tc.secure {
			t.Errorf("%s: Set-Cookie %q, want Secure %v", tc.name, sc, tc.secure)
		}
	}
	if strings.Contains(b.Output(), value) {
		t.Errorf("the backend logged the proxy secret")
	}
}
