package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app/postgres/pgtest"
	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/posterctl/posterctl/supervisor"
)

// Two clusters stand for two machines on one PostgreSQL database: the
// front runs the LB and one backend, with the backend machine's backend
// added as remote; the backend machine runs `up --no-lb --host 0.0.0.0`.
func TestTwoMachinesOnePostgres(t *testing.T) {
	dsn := pgtest.Schema(t, pgtest.DSN(t))
	front, back := newCluster(t), newCluster(t)
	remote := fmt.Sprintf("127.0.0.1:%d", back.basePort)

	back.up(startLimit, "--no-lb", "--host", "0.0.0.0", "--backends", "1", "--db", dsn)
	front.up(startLimit, "--backends", "1", "--db", dsn, "--remote-backend", remote)

	// status: the remote backend is listed, without a pid, healthy per the
	// LB; the backend machine checks its backend itself.
	clitest.Eventually(t, 10*time.Second, func() error {
		r := child(front.statusCLI(), remote)
		if !r.Remote || r.State != supervisor.Remote || r.Pid != 0 || r.Health != "healthy" {
			return fmt.Errorf("remote row %+v", r)
		}
		return nil
	})
	st := front.statusCLI()
	if len(st.Children) != 3 || child(st, "backend-1").Pid == 0 || child(st, "lb").Pid == 0 {
		t.Fatalf("front status %+v", st.Children)
	}
	bst := back.statusCLI()
	if len(bst.Children) != 1 || child(bst, "backend-1").Health != "healthy" || bst.Supervisor.HealthURL != "" {
		t.Fatalf("backend machine status %+v %+v", bst.Supervisor, bst.Children)
	}

	// A session made through the LB works on both backends.
	cl := noRetryClient()
	cookie := registerAndLogin(t, cl, front.url(""), "twomachines")
	direct := map[string]string{
		"front": fmt.Sprintf("http://127.0.0.1:%d", front.basePort),
		"back":  fmt.Sprintf("http://127.0.0.1:%d", back.basePort),
	}
	for name, base := range direct {
		if code, body := call(t, cl, "GET", base+"/api/user", "", cookie); code != 200 || !strings.Contains(body, "twomachines") {
			t.Fatalf("session on the %s machine's backend: %d %s", name, code, body)
		}
	}
	// A post written through one is read through the other, both ways.
	for _, way := range [][2]string{{"front", "back"}, {"back", "front"}} {
		content := "written on " + way[0]
		if code, body := call(t, cl, "POST", direct[way[0]]+"/api/posts", `{"content":"`+content+`"}`, cookie); code != 201 {
			t.Fatalf("post on %s: %d %s", way[0], code, body)
		}
		if code, body := call(t, cl, "GET", direct[way[1]]+"/api/posts", "", nil); code != 200 || !strings.Contains(body, content) {
			t.Fatalf("post written on %s not read on %s: %d %s", way[0], way[1], code, body)
		}
	}
	// Through the LB the remote backend takes its turn.
	for range 6 {
		if code, body := call(t, cl, "GET", front.url("/api/posts"), "", nil); code != 200 {
			t.Fatalf("GET through the LB: %d %s", code, body)
		}
	}
	code, body := call(t, cl, "GET", fmt.Sprintf("http://127.0.0.1:%d/health", front.health), "", nil)
	var health struct {
		Backends []struct {
			Address  string `json:"address"`
			Requests int    `json:"requests"`
		} `json:"backends"`
	}
	if err := json.Unmarshal([]byte(body), &health); code != 200 || err != nil {
		t.Fatalf("/health: %d %v %s", code, err, body)
	}
	for _, b := range health.Backends {
		if b.Requests == 0 {
			t.Fatalf("backend %s got no request through the LB: %s", b.Address, body)
		}
	}

	// The password appears nowhere: not in status, logs or the ready line.
	userinfo := userinfoOf(t, dsn)
	out, _, _ := front.run(10*time.Second, "status", "--run-dir", front.runDir)
	if !strings.Contains(out, "remote") || !strings.Contains(out, remote) {
		t.Fatalf("status table lacks the remote backend:\n%s", out)
	}
	js, _ := json.Marshal(front.statusCLI())
	for _, c := range []*cluster{front, back} {
		logs := readLogs(t, c.runDir)
		for what, text := range map[string]string{"status table": out, "status json": string(js), "logs": logs} {
			if strings.Contains(text, userinfo) {
				t.Fatalf("%s carries the password (%s):\n%s", what, userinfo, text)
			}
		}
		if !strings.Contains(logs, "xxxxx") {
			t.Fatalf("the logs never name the store (redacted):\n%s", logs)
		}
	}
}

// userinfoOf is the "user:password@" of a connection URL: a leaked URL
// carries it, while the bare password may be a common word.
func userinfoOf(t *testing.T, dsn string) string {
	t.Helper()
	_, rest, _ := strings.Cut(dsn, "://")
	at := strings.LastIndexByte(rest, '@')
	if at < 0 || !strings.Contains(rest[:at], ":") {
		t.Skipf("%s has no password to look for", pgtest.Env)
	}
	return rest[:at+1]
}

func readLogs(t *testing.T, runDir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(runDir, supervisor.LogsDir, "*.log"))
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// registerAndLogin registers username at base (the app's URL, no trailing
// slash) and returns its session cookie.
func registerAndLogin(t *testing.T, cl *http.Client, base, username string) *http.Cookie {
	t.Helper()
	creds := fmt.Sprintf(`{"username":%q,"password":"correct horse battery"}`, username)
	if code, body := call(t, cl, "POST", base+"/api/register", creds, nil); code != 201 {
		t.Fatalf("register %s at %s: %d %s", username, base, code, body)
	}
	resp, err := cl.Post(base+"/api/login", "application/json", strings.NewReader(creds))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(resp.Cookies()) == 0 {
		t.Fatalf("login %s at %s: %d", username, base, resp.StatusCode)
	}
	return resp.Cookies()[0]
}

// call sends one JSON request and returns the status and body.
func call(t *testing.T, cl *http.Client, method, url, body string, cookie *http.Cookie) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A PostgreSQL store that cannot be reached fails `up` with the password
// masked everywhere: in the error, the child's last lines and the logs.
func TestUpPostgresUnreachableHidesPassword(t *testing.T) {
	c := newCluster(t)
	dsn := fmt.Sprintf("postgres://poster:Sekr1tPw@127.0.0.1:%d/poster?sslmode=disable&connect_timeout=1", clitest.FreePort(t))
	out, errOut, code := c.run(startLimit, append(append([]string{"up", "-d"}, c.flags()...),
		"--db", dsn, "--restart-limit", "0", "--ready-timeout", "10s")...)
	if code == 0 {
		t.Fatalf("up on an unreachable store succeeded:\n%s%s", out, errOut)
	}
	// One line about the store, before any backend was started.
	if strings.Contains(out+errOut, "Sekr1tPw") || !strings.Contains(out+errOut, "open store postgres://poster:xxxxx@") {
		t.Fatalf("up: exit %d\n%s%s", code, out, errOut)
	}
	if logs := readLogs(t, c.runDir); strings.Contains(logs, "Sekr1tPw") {
		t.Fatalf("the logs carry the password:\n%s", logs)
	}
	if left := c.leftovers(); len(left) > 0 {
		t.Fatalf("a failed up left %d processes", len(left))
	}
}
