package web_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/posterctl/posterctl/app/web"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
)

// TestCreatePost_BothPaths: a store that checks the session in its write
// (SessionPoster) and one that does not give the same answers, and a request
// without a live session gets 401 whatever its body.
func TestCreatePost_BothPaths(t *testing.T) {
	e := newEnv(t)
	c := e.login("paula")
	plainSrv := web.NewServer(unversioned{e.db}, "backend-test", zerolog.Nop())
	plainSrv.BcryptCost = bcrypt.MinCost
	plain := httptest.NewServer(plainSrv.Handler())
	defer plain.Close()

	for _, base := range []string{e.ts.URL, plain.URL} {
		post := func(c *http.Client, cookie, body string) int {
			t.Helper()
			req, _ := http.NewRequest("POST", base+"/api/posts", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if cookie != "" {
				req.Header.Set("Cookie", cookie)
			}
			if c == nil {
				c = http.DefaultClient
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated && !strings.Contains(b.String(), `"author":"paula"`) {
				t.Fatalf("%s: created %s", base, b.Bytes())
			}
			return resp.StatusCode
		}
		// The cookie jar of c holds the session for e.ts's host, which is
		// plain's host too (both are 127.0.0.1).
		for _, tc := range []struct {
			name   string
			c      *http.Client
			cookie string
			body   string
			want   int
		}{
			{"OK", c, "", `{"content":"hello"}`, http.StatusCreated},
			{"Malformed", c, "", `{"content":`, http.StatusBadRequest},
			{"Empty", c, "", `{"content":"  "}`, http.StatusBadRequest},
			{"NoCookie", nil, "", `{"content":"hello"}`, http.StatusUnauthorized},
			{"NoCookieMalformed", nil, "", `{"content":`, http.StatusUnauthorized},
			{"BadCookie", nil, "poster_session=AAAA", `{"content":"hello"}`, http.StatusUnauthorized},
			{"UnknownSession", nil, "poster_session=" + strings.Repeat("A", 43), `{"content":"hello"}`, http.StatusUnauthorized},
			{"UnknownSessionMalformed", nil, "poster_session=" + strings.Repeat("A", 43), `{"content":`, http.StatusUnauthorized},
		} {
			if got := post(tc.c, tc.cookie, tc.body); got != tc.want {
				t.Errorf("%s %s: status %d, want %d", base, tc.name, got, tc.want)
			}
		}
	}
}
