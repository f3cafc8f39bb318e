package integration

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	_ "modernc.org/sqlite"
)

// TestBackend_SharedSession is the two-backend acceptance: a login
// made through one backend is valid on the other, a post written through one
// is read through the other, and logout through either ends it on both.
func TestBackend_SharedSession(t *testing.T) {
	db := dbPath(t)
	a := startBackend(t, db, "backend-a")
	b := startBackend(t, db, "backend-b")
	hc := newHTTPClient(4)
	defer hc.CloseIdleConnections()

	alice := checkOneStore(t, hc, a, b, func(table string) int { return countRows(t, db, table) })

	// Logout through b ends the session on a; a second session logged out
	// through a ends on b.
	alice.must("DELETE", b.url+"/api/logout", nil, http.StatusNoContent)
	alice.must("GET", a.url+"/api/user", nil, http.StatusUnauthorized)
	alice.must("GET", b.url+"/api/user", nil, http.StatusUnauthorized)

	bob := &client{tb: t, hc: hc}
	bob.registerAndLogin(b.url, "bob", "bob-password")
	bob.must("GET", a.url+"/api/user", nil, http.StatusOK)
	bob.must("DELETE", a.url+"/api/logout", nil, http.StatusNoContent)
	bob.must("GET", b.url+"/api/user", nil, http.StatusUnauthorized)
}

// checkOneStore registers alice on a and checks that the two backends are
// one app: her session is valid on b, a post written through b is read
// through a, and an Idempotency-Key replayed through b is caught (count reads
// a table's size). It returns alice, still logged in.
func checkOneStore(t *testing.T, hc *http.Client, a, b *backend, count func(table string) int) *client {
	t.Helper()
	alice := &client{tb: t, hc: hc}
	alice.registerAndLogin(a.url, "alice", "alice-password")

	r := alice.must("GET", b.url+"/api/user", nil, http.StatusOK)
	var u struct{ Username string }
	r.decode(t, &u)
	if u.Username != "alice" || r.header.Get("X-Backend") != b.name {
		t.Fatalf("user through b = %s (X-Backend %q, want %s)", r.body, r.header.Get("X-Backend"), b.name)
	}

	r = alice.must("POST", b.url+"/api/posts", map[string]string{"content": "written through b"}, http.StatusCreated)
	var created struct{ ID int64 }
	r.decode(t, &created)
	var page struct {
		Posts []struct {
			ID      int64
			Author  string
			Content string
		}
	}
	alice.must("GET", a.url+"/api/posts", nil, http.StatusOK).decode(t, &page)
	if len(page.Posts) != 1 || page.Posts[0].ID != created.ID || page.Posts[0].Content != "written through b" || page.Posts[0].Author != "alice" {
		t.Fatalf("posts through a: %+v", page.Posts)
	}

	first := alice.must("POST", a.url+"/api/posts", map[string]string{"content": "once"}, http.StatusCreated, "Idempotency-Key", "k1")
	again := alice.must("POST", b.url+"/api/posts", map[string]string{"content": "once"}, http.StatusCreated, "Idempotency-Key", "k1")
	if !bytes.Equal(first.body, again.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay through b: %s, first %s", again.body, first.body)
	}
	if n := count("posts"); n != 2 {
		t.Fatalf("%d posts stored, want 2", n)
	}
	return alice
}

// TestBackend_Concurrency is the concurrency acceptance: two
// processes, eight clients each, 500 posts per client through alternating
// backends; all 8000 posts stored and no 5xx.
func TestBackend_Concurrency(t *testing.T) {
	db := dbPath(t)
	testConcurrency(t, db, 500, func(table string) int { return countRows(t, db, table) })
}

// testConcurrency runs two backends on db, eight clients each, postsPerClient
// posts per client through alternating backends, and checks that every post
// is stored (count reads a table's size) and nothing answered 5xx.
func testConcurrency(t *testing.T, db string, postsPerClient int, count func(table string) int) {
	const perBackend = 8
	backends := []*backend{
		startBackend(t, db, "backend-1", "--log-level", "warn"),
		startBackend(t, db, "backend-2", "--log-level", "warn"),
	}
	clients := 2 * perBackend
	hc := newHTTPClient(2 * clients)
	defer hc.CloseIdleConnections()

	// Four users with four sessions each: every client has its own login,
	// and bcrypt (slow on purpose, slower under -race) stays a small part
	// of the test.
	const users = 4
	cs := make([]*client, clients)
	for i := range users {
		(&client{tb: t, hc: hc}).must("POST", backends[i%2].url+"/api/register",
			map[string]string{"username": fmt.Sprintf("writer_%d", i), "password": "writer-password"}, http.StatusCreated)
	}
	var logins sync.WaitGroup
	for i := range cs {
		cs[i] = &client{tb: t, hc: hc}
		logins.Go(func() { cs[i].login(backends[(i+1)%2].url, fmt.Sprintf("writer_%d", i%users), "writer-password") })
	}
	logins.Wait()
	if t.Failed() {
		return
	}

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range cs {
		wg.Go(func() {
			for n := range postsPerClient {
				be := backends[(i+n)%2]
				r, err := c.do("POST", be.url+"/api/posts", map[string]string{"content": fmt.Sprintf("post %d of writer %d", n, i)})
				if err == nil && r.status != http.StatusCreated {
					err = fmt.Errorf("%s: status %d: %s", be.name, r.status, r.body)
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d post %d: %w", i, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d posts through 2 backends in %v", clients*postsPerClient, time.Since(start).Round(time.Millisecond))
	if n := count("posts"); n != clients*postsPerClient {
		t.Fatalf("%d posts stored, want %d", n, clients*postsPerClient)
	}
	for _, b := range backends {
		if out := b.Output(); strings.Contains(out, "locked") || strings.Contains(out, `"level":"error"`) {
			t.Errorf("%s logged errors:\n%s", b.name, out)
		}
	}
}

// TestBackend_PasswordNotStored looks for the password in every file of the
// database, while the backend runs and after it stopped.
func TestBackend_PasswordNotStored(t *testing.T) {
	db := dbPath(t)
	b := startBackend(t, db, "backend-1")
	hc := newHTTPClient(1)
	defer hc.CloseIdleConnections()
	const password = "Sup3r-Secret-Passw0rd"
	c := &client{tb: t, hc: hc}
	c.registerAndLogin(b.url, "dana", password)
	c.must("POST", b.url+"/api/posts", map[string]string{"content": "hello"}, http.StatusCreated)

	check := func() {
		files, _ := filepath.Glob(db + "*")
		if len(files) == 0 {
			t.Fatal("no database files")
		}
		for _, f := range files {
			buf, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(buf, []byte(password)) {
				t.Fatalf("%s holds the password in clear", f)
			}
			// The test would be blind if it could not find stored text.
			if filepath.Base(f) == filepath.Base(db)+"-wal" && !bytes.Contains(buf, []byte("dana")) {
				t.Logf("%s does not hold the username (checkpointed)", f)
			}
		}
	}
	check()
	if err := b.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := b.Wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, b.Output())
	}
	check()
	all, _ := filepath.Glob(db + "*")
	var found bool
	for _, f := range all {
		buf, _ := os.ReadFile(f)
		found = found || bytes.Contains(buf, []byte("dana"))
	}
	if !found {
		t.Fatal("the username is not in any database file either: the search is broken")
	}
}

// TestBackend_StartupErrors: every start-up problem is one clear line on
// stderr and a non-zero exit, and a taken port is named.
func TestBackend_StartupErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	// Over 100 bytes: SQLite reads a shorter file as an empty database.
	if err := os.WriteFile(file, []byte(strings.Repeat("not a database. ", 16)), 0o644); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(clitest.FreePort(t))
	db := filepath.Join(dir, "poster.db")

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"port in use", []string{"backend", "--db", db, strconv.Itoa(busy)}, fmt.Sprintf("port %d is already in use", busy)},
		{"bad port", []string{"backend", "--db", db, "abc"}, `invalid port "abc"`},
		{"port out of range", []string{"backend", "--db", db, "--port", "70000"}, "invalid port 70000"},
		{"port twice", []string{"backend", "--db", db, "--port", port, "1234"}, "port given twice"},
		{"flag after --", []string{"backend", "--", port, "--db", db}, "put flags first"},
		{"bad host", []string{"backend", "--db", db, "--host", "not a host", port}, `invalid --host "not a host"`},
		{"db dir is a file", []string{"backend", "--db", filepath.Join(file, "poster.db"), port}, "open store"},
		{"db is not sqlite", []string{"backend", "--db", file, port}, file + " is not a SQLite database"},
		{"unknown flag", []string{"backend", "--nope", port}, "nope"},
		{"bad log level", []string{"--log-level", "loud", "backend", "--db", db, port}, "invalid --log-level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := clitest.Run(t, 30*time.Second, bin, tc.args...)
			if code == 0 {
				t.Fatalf("exit 0:\n%s", out)
			}
			if !strings.Contains(out, tc.want) {
				t.Fatalf("output lacks %q:\n%s", tc.want, out)
			}
			if tc.name != "unknown flag" && strings.Count(strings.TrimSpace(out), "\n") != 0 {
				t.Fatalf("want one line, got:\n%s", out)
			}
		})
	}
}

// TestBackend_GracefulShutdown sends SIGTERM while a request is in flight:
// the backend stops accepting, finishes the request, and exits 0.
func TestBackend_GracefulShutdown(t *testing.T) {
	db := dbPath(t)
	b := startBackend(t, db, "backend-1", "--log-level", "debug")

	// A registration whose body arrives in two parts keeps the request in
	// the handler until the test sends the rest.
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", b.port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"username":"late_user","password":"late-password"}`
	head := fmt.Sprintf("POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nX-Request-Id: in-flight-1\r\n\r\n", len(body))
	if _, err := io.WriteString(conn, head+body[:10]); err != nil {
		t.Fatal(err)
	}
	// Wait until the handler runs: before that the connection may still sit
	// in the listen backlog, and closing the listener would drop it.
	clitest.Eventually(t, 10*time.Second, func() error {
		out := b.Output()
		if !strings.Contains(out, `"request_id":"in-flight-1"`) || !strings.Contains(out, "request started") {
			return fmt.Errorf("request not started yet")
		}
		return nil
	})

	if err := b.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// New connections are refused once shutdown has begun...
	clitest.Eventually(t, 10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", b.port), time.Second)
		if err != nil {
			return nil
		}
		c.Close()
		return fmt.Errorf("still accepting")
	})
	// ...while the process waits for the request in flight.
	select {
	case <-b.Done():
		t.Fatalf("exited with a request in flight:\n%s", b.Output())
	default:
	}

	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v\n%s", err, b.Output())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("in-flight request = %d", resp.StatusCode)
	}
	if code := b.Wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, b.Output())
	}
	if n := countRows(t, db, "users"); n != 1 {
		t.Fatalf("%d users stored, want 1", n)
	}
	out := b.Output()
	for _, want := range []string{"shutting down", "backend stopped", `"request_id":"in-flight-1"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestBackend_Logs checks the start-up line and the access log: JSON when not
// on a terminal, port, pid and db path at start, one line per request with
// the incoming X-Request-Id.
func TestBackend_Logs(t *testing.T) {
	db := dbPath(t)
	b := startBackend(t, db, "backend-logs")
	hc := newHTTPClient(1)
	defer hc.CloseIdleConnections()
	c := &client{tb: t, hc: hc}
	c.must("GET", b.url+"/api/posts?limit=1", nil, http.StatusOK, "X-Request-Id", "trace-me-7")
	c.must("GET", b.url+"/api/nothing", nil, http.StatusNotFound)

	var lines []map[string]any
	clitest.Eventually(t, 10*time.Second, func() error {
		lines = lines[:0]
		for _, l := range strings.Split(strings.TrimSpace(b.Output()), "\n") {
			var ev map[string]any
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				return fmt.Errorf("not JSON: %q", l)
			}
			lines = append(lines, ev)
		}
		if len(lines) < 3 {
			return fmt.Errorf("%d lines", len(lines))
		}
		return nil
	})
	start := lines[0]
	if start["port"] != float64(b.port) || start["pid"] != float64(b.Pid()) || start["db"] != db {
		t.Fatalf("start-up line: %v", start)
	}
	var traced, notFound bool
	for _, ev := range lines[1:] {
		if ev["message"] != "request" {
			continue
		}
		traced = traced || ev["request_id"] == "trace-me-7" && ev["path"] == "/api/posts" && ev["status"] == float64(200)
		notFound = notFound || ev["path"] == "/api/nothing" && ev["status"] == float64(404) && ev["duration"] != nil && ev["method"] == "GET"
	}
	if !traced || !notFound {
		t.Fatalf("access lines missing:\n%s", b.Output())
	}
}

// TestBackend_PositionalPort: `posterctl backend PORT` works like the seed's
// `npm run backend 3001` and names itself backend-PORT.
func TestBackend_PositionalPort(t *testing.T) {
	port := clitest.FreePort(t)
	p := clitest.Start(t, bin, "backend", "--db", dbPath(t), strconv.Itoa(port))
	b := &backend{Process: p, name: "positional", port: port, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	waitHealthy(t, b)
	hc := newHTTPClient(1)
	defer hc.CloseIdleConnections()
	r := (&client{tb: t, hc: hc}).must("GET", b.url+"/healthz", nil, http.StatusOK)
	var v map[string]string
	r.decode(t, &v)
	want := fmt.Sprintf("backend-%d", port)
	if v["backend"] != want || r.header.Get("X-Backend") != want {
		t.Fatalf("healthz %s, X-Backend %q, want %s", r.body, r.header.Get("X-Backend"), want)
	}
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT:\n%s", code, p.Output())
	}
}

func countRows(tb testing.TB, db, table string) int {
	tb.Helper()
	conn, err := sql.Open("sqlite", db+"?_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	var n int
	if err := conn.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}
