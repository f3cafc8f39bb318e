package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	plan "github.com/posterctl/posterctl/cluster"
	"github.com/posterctl/posterctl/lbapi"
)

// adminCall sends one admin request with the given Authorization header
// ("" for none) and returns the status and body.
func (c *cluster) adminCall(t *testing.T, method, path, body, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", c.health, path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := noRetryClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// backendStates lists the LB's set with the token, as the supervisor sees it.
func (c *cluster) backendStates(t *testing.T, token string) map[string]string {
	t.Helper()
	cl := lbapi.NewClient(fmt.Sprintf("http://127.0.0.1:%d", c.health), 5*time.Second, lbapi.WithToken(token))
	defer cl.Close()
	l, err := cl.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, b := range l {
		m[b.Address] = b.State
	}
	return m
}

func environ(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Skipf("cannot read a process's environment here: %v", err)
	}
	return "\x00" + string(b)
}

// TestAdminNeedsToken is issue 12's first point: the admin API answers 401
// to anyone without the token in the run dir, as the same user and as
// another one, and nothing changes; traffic still reaches only the
// cluster's backends. The secrets are 0600 files passed by path, and the LB
// does not inherit the store's POSTERCTL_DB.
func TestAdminNeedsToken(t *testing.T) {
	c := newCluster(t)
	t.Setenv("POSTERCTL_DB", filepath.Join(c.dataDir, "poster.db"))
	c.up(60 * time.Second)

	secrets := map[string]string{}
	for _, name := range []string{plan.ProxySecretName, plan.AdminTokenName} {
		p := filepath.Join(c.runDir, name)
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v; want a regular file of mode 0600", p, fi, err)
		}
		b, _ := os.ReadFile(p)
		secrets[name] = strings.TrimSpace(string(b))
	}
	token := secrets[plan.AdminTokenName]

	st := c.status()
	lb, b1 := child(st, "lb"), child(st, "backend-1")
	lbEnv, beEnv := environ(t, lb.Pid), environ(t, b1.Pid)
	if strings.Contains(lbEnv, "\x00POSTERCTL_DB=") {
		t.Errorf("the LB inherited POSTERCTL_DB")
	}
	if !strings.Contains(beEnv, "\x00POSTERCTL_DB=") {
		t.Errorf("backend-1 lacks POSTERCTL_DB")
	}
	for _, pid := range []int{st.Supervisor.Pid, lb.Pid, b1.Pid} {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		env := environ(t, pid)
		for name, v := range secrets {
			if bytes.Contains(cmdline, []byte(v)) || strings.Contains(env, v) {
				t.Errorf("pid %d carries the %s's value in its argv or environment", pid, name)
			}
		}
	}

	before := c.backendStates(t, token)
	addr := fmt.Sprintf("127.0.0.1:%d", c.basePort)
	squat := `{"backends":["127.0.0.1:1"]}`
	calls := []struct{ method, path, body string }{
		{"PUT", "/admin/backends", squat},
		{"POST", "/admin/backends/" + addr + "/drain", ""},
		{"POST", "/admin/backends/" + addr + "/enable", ""},
		{"GET", "/admin/backends", ""},
	}
	for _, auth := range []string{"", "Bearer ", "Bearer not-the-token", "Bearer " + secrets[plan.ProxySecretName]} {
		for _, call := range calls {
			code, body := c.adminCall(t, call.method, call.path, call.body, auth)
			var e lbapi.Error
			if code != 401 || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
				t.Fatalf("%s %s with Authorization %q: %d %s", call.method, call.path, auth, code, body)
			}
		}
	}

	t.Run("AnotherUser", func(t *testing.T) {
		for _, call := range calls[:3] {
			url := fmt.Sprintf("http://127.0.0.1:%d%s", c.health, call.path)
			args := []string{"--reuid", "65534", "--regid", "65534", "--clear-groups",
				"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", call.method, "--max-time", "10"}
			if call.body != "" {
				args = append(args, "-H", "Content-Type: application/json", "--data", call.body)
			}
			out, err := exec.Command("setpriv", append(args, url)...).CombinedOutput()
			if err != nil {
				t.Skipf("cannot run curl as uid 65534 here (setpriv needs root, and curl): %v: %s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != "401" {
				t.Fatalf("%s %s as uid 65534: %s", call.method, call.path, got)
			}
		}
	})

	if after := c.backendStates(t, token); !reflect.DeepEqual(after, before) {
		t.Fatalf("the set changed without the token: %v, was %v", after, before)
	}
	own := map[string]bool{"backend-1": true, "backend-2": true}
	for i := range 8 {
		resp, err := noRetryClient().Get(c.url("/healthz"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !own[resp.Header.Get("X-Backend")] {
			t.Fatalf("request %d: %d from %q", i, resp.StatusCode, resp.Header.Get("X-Backend"))
		}
	}

	// The health port answers only under a loopback name.
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/health", c.health), nil)
	req.Host = "rebound.example"
	resp, err := noRetryClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("/health with Host rebound.example: %d", resp.StatusCode)
	}
}

// loginCookie registers (when asked) and logs in at base, sending
// X-Forwarded-Proto: https, and returns the session's Set-Cookie line.
func loginCookie(t *testing.T, base, user string, register bool) string {
	t.Helper()
	creds := fmt.Sprintf(`{"username":%q,"password":"correct horse battery"}`, user)
	cl := noRetryClient()
	if register {
		if code, body := call(t, cl, "POST", base+"/api/register", creds, nil); code != 201 {
			t.Fatalf("register at %s: %d %s", base, code, body)
		}
	}
	req, _ := http.NewRequest("POST", base+"/api/login", strings.NewReader(creds))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Set-Cookie") == "" {
		t.Fatalf("login at %s: %d", base, resp.StatusCode)
	}
	return resp.Header.Get("Set-Cookie")
}

// TestForwardedProtoTrust: X-Forwarded-Proto: https from a client makes no
// Secure cookie, through the LB or straight to a backend; from a front
// proxy named with --trusted-proxy (here the test itself, on 127.0.0.1)
// it does.
func TestForwardedProtoTrust(t *testing.T) {
	secure := func(setCookie string) bool {
		for _, attr := range strings.Split(setCookie, ";") {
			if strings.EqualFold(strings.TrimSpace(attr), "Secure") {
				return true
			}
		}
		return false
	}
	untrusted := newCluster(t)
	untrusted.up(60 * time.Second)
	if sc := loginCookie(t, untrusted.url(""), "alice", true); secure(sc) {
		t.Errorf("through the LB from an untrusted client: Set-Cookie %q is Secure", sc)
	}
	direct := fmt.Sprintf("http://127.0.0.1:%d", untrusted.basePort)
	if sc := loginCookie(t, direct, "alice", false); secure(sc) {
		t.Errorf("straight to a backend: Set-Cookie %q is Secure", sc)
	}
	untrusted.run(30*time.Second, "down", "--run-dir", untrusted.runDir)

	trusted := newCluster(t)
	trusted.up(60*time.Second, "--trusted-proxy", "127.0.0.1/32")
	if sc := loginCookie(t, trusted.url(""), "bob", true); !secure(sc) {
		t.Errorf("through the LB from a trusted proxy: Set-Cookie %q is not Secure", sc)
	}
	direct = fmt.Sprintf("http://127.0.0.1:%d", trusted.basePort)
	if sc := loginCookie(t, direct, "bob", false); secure(sc) {
		t.Errorf("straight to a backend of the trusted cluster: Set-Cookie %q is Secure", sc)
	}
}
