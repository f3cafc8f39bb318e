package web_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/posterctl/posterctl/app/sqlite"
	"github.com/posterctl/posterctl/app/web"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env is one server on a real SQLite file, reached through httptest.
type env struct {
	t      *testing.T
	db     *sqlite.DB
	srv    *web.Server
	ts     *httptest.Server
	logBuf *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t *testing.T) *env { return newEnvWith(t, nil) }

// newEnvWith is newEnv with a chance to configure the server before its
// handler is made.
func newEnvWith(t *testing.T, configure func(*web.Server, *sqlite.DB)) *env {
	t.Helper()
	db := sqlite.NewDB(filepath.Join(t.TempDir(), "poster.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	buf := &syncBuffer{}
	srv := web.NewServer(db, "backend-test", zerolog.New(buf))
	srv.BcryptCost = bcrypt.MinCost
	if configure != nil {
		configure(srv, db)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		db.Close()
	})
	return &env{t: t, db: db, srv: srv, ts: ts, logBuf: buf}
}

// client returns an HTTP client with its own cookie jar.
func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: e.ts.Client().Transport}
}

type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

// errMsg returns the "error" field of a JSON error body and fails the test
// when the body is not one.
func (r result) errMsg(t *testing.T) string {
	t.Helper()
	var v map[string]string
	if err := json.Unmarshal(r.body, &v); err != nil || v["error"] == "" {
		t.Fatalf("body %q is not a JSON error", r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type = %q", ct)
	}
	return v["error"]
}

func (e *env) do(c *http.Client, method, path, contentType string, body io.Reader, hdr ...string) result {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if c == nil {
		c = e.ts.Client()
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if got := resp.Header.Get("X-Backend"); got != "backend-test" {
		e.t.Errorf("%s %s: X-Backend = %q", method, path, got)
	}
	return result{resp.StatusCode, resp.Header, b}
}

func (e *env) doJSON(c *http.Client, method, path string, v any, hdr ...string) result {
	e.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do(c, method, path, "application/json", bytes.NewReader(b), hdr...)
}

// login registers name and returns a client holding its session cookie.
func (e *env) login(name string) *http.Client {
	e.t.Helper()
	creds := map[string]string{"username": name, "password": "password-" + name}
	if r := e.doJSON(nil, "POST", "/api/register", creds); r.status != http.StatusCreated {
		e.t.Fatalf("register %s: %d %s", name, r.status, r.body)
	}
	c := e.client()
	if r := e.doJSON(c, "POST", "/api/login", creds); r.status != http.StatusOK {
		e.t.Fatalf("login %s: %d %s", name, r.status, r.body)
	}
	return c
}

// snapshot describes the whole store, to prove a bad request changed nothing.
func (e *env) snapshot() string {
	e.t.Helper()
	conn, err := sql.Open("sqlite", e.db.Path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	var sb strings.Builder
	for _, q := range []string{
		`SELECT count(*), coalesce(max(id), 0) FROM users`,
		`SELECT count(*), coalesce(sum(expires_at), 0) FROM sessions`,
		`SELECT count(*), coalesce(max(id), 0) FROM posts`,
		`SELECT count(*), coalesce(sum(post_id), 0) FROM idempotency_keys`,
	} {
		var n, x int64
		if err := conn.QueryRow(q).Scan(&n, &x); err != nil {
			e.t.Fatalf("%s: %v", q, err)
		}
		fmt.Fprintf(&sb, "%d/%d ", n, x)
	}
	return sb.String()
}

func TestServer_OpenClose(t *testing.T) {
	db := sqlite.NewDB(filepath.Join(t.TempDir(), "poster.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := web.NewServer(db, "b1", zerolog.Nop())
	if err := s.Open("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz = %d", resp.StatusCode)
	}

	t.Run("ErrPortInUse", func(t *testing.T) {
		other := web.NewServer(db, "b2", zerolog.Nop())
		if err := other.Open(s.Addr().String()); err == nil {
			other.Close(context.Background())
			t.Fatal("second Open on the same port succeeded")
		}
	})

	http.DefaultClient.CloseIdleConnections()
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(s.URL() + "/healthz"); err == nil {
		t.Fatal("server still answers after Close")
	}
}
