package web_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestBadInput sends every kind of malformed request to every endpoint that
// takes a body and checks the status, the JSON error and that the store did
// not change.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	c := e.login("henry")
	e.doJSON(c, "POST", "/api/posts", map[string]string{"content": "existing"})

	big := `{"content":"` + strings.Repeat("x", 70<<10) + `"}`
	type tc struct {
		name, method, path, ctype string
		body                      string
		chunked                   bool
		status                    int
		allow                     string
	}
	var cases []tc
	for _, path := range []string{"/api/register", "/api/login", "/api/posts"} {
		cases = append(cases,
			tc{name: "malformed", method: "POST", path: path, ctype: "application/json", body: `{"username":`, status: 400},
			tc{name: "not an object", method: "POST", path: path, ctype: "application/json", body: `["a"]`, status: 400},
			tc{name: "wrong type", method: "POST", path: path, ctype: "application/json", body: `{"username":1,"password":2,"content":3}`, status: 400},
			tc{name: "unknown field", method: "POST", path: path, ctype: "application/json", body: `{"username":"ivan_x","password":"12345678","content":"x","admin":true}`, status: 400},
			tc{name: "trailing data", method: "POST", path: path, ctype: "application/json", body: `{"username":"ivan_x","password":"12345678","content":"x"} {}`, status: 400},
			tc{name: "empty body", method: "POST", path: path, ctype: "application/json", body: ``, status: 400},
			tc{name: "form content type", method: "POST", path: path, ctype: "application/x-www-form-urlencoded", body: `username=ivan_x&password=12345678`, status: 415},
			tc{name: "no content type", method: "POST", path: path, body: `{"username":"ivan_x","password":"12345678","content":"x"}`, status: 415},
			tc{name: "text content type", method: "POST", path: path, ctype: "text/plain", body: `{"username":"ivan_x","password":"12345678","content":"x"}`, status: 415},
			tc{name: "too large", method: "POST", path: path, ctype: "application/json", body: big, status: 413},
			tc{name: "too large chunked", method: "POST", path: path, ctype: "application/json", body: big, chunked: true, status: 413},
		)
	}
	cases = append(cases,
		tc{name: "unknown api path", method: "GET", path: "/api/nope", status: 404},
		tc{name: "unknown api path post", method: "POST", path: "/api/posts/1", ctype: "application/json", body: `{}`, status: 404},
		tc{name: "unknown page", method: "GET", path: "/nope", status: 404},
		tc{name: "register GET", method: "GET", path: "/api/register", status: 405, allow: "POST"},
		tc{name: "login PUT", method: "PUT", path: "/api/login", ctype: "application/json", body: `{}`, status: 405, allow: "POST"},
		tc{name: "logout GET", method: "GET", path: "/api/logout", status: 405, allow: "DELETE"},
		tc{name: "logout POST", method: "POST", path: "/api/logout", status: 405, allow: "DELETE"},
		tc{name: "user DELETE", method: "DELETE", path: "/api/user", status: 405, allow: "GET, HEAD"},
		tc{name: "posts DELETE", method: "DELETE", path: "/api/posts", status: 405, allow: "GET, HEAD, POST"},
		tc{name: "healthz POST", method: "POST", path: "/healthz", status: 405, allow: "GET, HEAD"},
		tc{name: "page POST", method: "POST", path: "/", status: 405, allow: "GET, HEAD"},
	)

	for _, tc := range cases {
		t.Run(tc.path+" "+tc.name, func(t *testing.T) {
			before := e.snapshot()
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(bytes.NewReader([]byte(tc.body))) // unknown length: sent chunked
			}
			r := e.do(c, tc.method, tc.path, tc.ctype, body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			r.errMsg(t)
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Fatalf("Allow = %q, want %q", got, tc.allow)
			}
			if after := e.snapshot(); after != before {
				t.Fatalf("store changed: %s -> %s", before, after)
			}
		})
	}

	// The session still works after all that, and nothing was posted.
	var p pageJSON
	e.do(c, "GET", "/api/posts", "", nil).json(t, &p)
	if len(p.Posts) != 1 {
		t.Fatalf("%d posts stored, want 1", len(p.Posts))
	}
	if r := e.do(c, "GET", "/api/user", "", nil); r.status != http.StatusOK {
		t.Fatalf("session lost: %d", r.status)
	}
}
