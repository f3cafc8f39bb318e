package web_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestHealthz(t *testing.T) {
	e := newEnv(t)
	r := e.do(nil, "GET", "/healthz", "", nil)
	var v map[string]string
	r.json(t, &v)
	if r.status != http.StatusOK || v["status"] != "ok" || v["backend"] != "backend-test" {
		t.Fatalf("healthz = %d %s", r.status, r.body)
	}

	t.Run("StoreDown", func(t *testing.T) {
		e.db.Close()
		r := e.do(nil, "GET", "/healthz", "", nil)
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("healthz with a closed store = %d %s", r.status, r.body)
		}
	})
}

func TestPage(t *testing.T) {
	e := newEnv(t)
	r := e.do(nil, "GET", "/", "", nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %q", r.status, r.header.Get("Content-Type"))
	}
	if !strings.Contains(string(r.body), "<title>Poster</title>") {
		t.Fatalf("page: %.200s", r.body)
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP = %q", csp)
	}
	for _, p := range []string{"/static/app.js", "/static/style.css", "/favicon.ico"} {
		if r := e.do(nil, "GET", p, "", nil); r.status != http.StatusOK || len(r.body) == 0 {
			t.Errorf("GET %s = %d", p, r.status)
		}
	}
	// The script never renders user text as HTML.
	js := string(e.do(nil, "GET", "/static/app.js", "", nil).body)
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	for _, p := range []string{"/static/", "/static/../server.go", "/static/nope.js", "/index.html/x"} {
		if r := e.do(nil, "GET", p, "", nil); r.status != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, r.status)
		}
	}
	if r := e.do(nil, "HEAD", "/", "", nil); r.status != http.StatusOK {
		t.Errorf("HEAD / = %d", r.status)
	}
}

func TestRequestID(t *testing.T) {
	e := newEnv(t)
	r := e.do(nil, "GET", "/api/posts", "", nil, "X-Request-Id", "req-from-lb-42")
	if got := r.header.Get("X-Request-Id"); got != "req-from-lb-42" {
		t.Fatalf("X-Request-Id = %q", got)
	}
	r = e.do(nil, "GET", "/api/posts", "", nil, "X-Request-Id", strings.Repeat("x", 129))
	generated := r.header.Get("X-Request-Id")
	if generated == "" || len(generated) > 128 {
		t.Fatalf("generated X-Request-Id = %q", generated)
	}
	if r := e.do(nil, "GET", "/api/posts", "", nil, "X-Request-Id", "has space"); r.header.Get("X-Request-Id") == "has space" {
		t.Fatal("an id with a space was kept")
	}

	var found, foundGenerated bool
	for _, line := range strings.Split(strings.TrimSpace(e.logBuf.String()), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if ev["message"] != "request" {
			continue
		}
		if ev["method"] == nil || ev["path"] == nil || ev["status"] == nil || ev["duration"] == nil {
			t.Fatalf("access log line lacks fields: %s", line)
		}
		switch ev["request_id"] {
		case "req-from-lb-42":
			found = true
		case generated:
			foundGenerated = true
		}
	}
	if !found || !foundGenerated {
		t.Fatalf("request ids not logged:\n%s", e.logBuf.String())
	}
}
