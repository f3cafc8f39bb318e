package web_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app"
)

type userJSON struct {
	ID        int64     `json:"id"`
	Username  string    `json:"username"`
	CreatedAt time.Time `json:"created_at"`
}

type postJSON struct {
	ID        int64  `json:"id"`
	Author    string `json:"author"`
	Content   string `json:"content"`
	CreatedAt string `json:"created_at"`
}

type pageJSON struct {
	Posts      []postJSON `json:"posts"`
	NextBefore *int64     `json:"next_before"`
}

func TestRegister(t *testing.T) {
	e := newEnv(t)

	t.Run("OK", func(t *testing.T) {
		r := e.doJSON(nil, "POST", "/api/register", map[string]string{"username": "alice_1", "password": "12345678"})
		if r.status != http.StatusCreated {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		var u userJSON
		r.json(t, &u)
		if u.ID == 0 || u.Username != "alice_1" || u.CreatedAt.IsZero() || u.CreatedAt.Location() != time.UTC {
			t.Fatalf("user = %+v", u)
		}
		if bytes.Contains(r.body, []byte("password")) {
			t.Fatalf("response mentions the password: %s", r.body)
		}
	})

	t.Run("ErrConflict", func(t *testing.T) {
		before := e.snapshot()
		r := e.doJSON(nil, "POST", "/api/register", map[string]string{"username": "ALICE_1", "password": "another-pass"})
		if r.status != http.StatusConflict {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		if msg := r.errMsg(t); !strings.Contains(msg, "taken") {
			t.Fatalf("error %q", msg)
		}
		if after := e.snapshot(); after != before {
			t.Fatalf("store changed: %s -> %s", before, after)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		for _, tc := range []struct{ user, pass string }{
			{"ab", "12345678"},
			{strings.Repeat("a", 33), "12345678"},
			{"bad name", "12345678"},
			{"bad-name", "12345678"},
			{"", "12345678"},
			{"validname", "1234567"},
			{"validname", strings.Repeat("p", 73)},
			{"validname", ""},
		} {
			before := e.snapshot()
			r := e.doJSON(nil, "POST", "/api/register", map[string]string{"username": tc.user, "password": tc.pass})
			if r.status != http.StatusBadRequest {
				t.Errorf("%q/%d bytes: status %d %s", tc.user, len(tc.pass), r.status, r.body)
				continue
			}
			r.errMsg(t)
			if after := e.snapshot(); after != before {
				t.Fatalf("store changed: %s -> %s", before, after)
			}
		}
		// The limits themselves are valid.
		for _, tc := range []struct{ user, pass string }{
			{"abc", strings.Repeat("p", 72)},
			{strings.Repeat("Z", 32), "12345678"},
		} {
			r := e.doJSON(nil, "POST", "/api/register", map[string]string{"username": tc.user, "password": tc.pass})
			if r.status != http.StatusCreated {
				t.Errorf("%q/%d bytes: status %d %s", tc.user, len(tc.pass), r.status, r.body)
			}
		}
	})
}

func TestLogin(t *testing.T) {
	e := newEnv(t)
	e.doJSON(nil, "POST", "/api/register", map[string]string{"username": "bob", "password": "correct horse"})

	t.Run("OK", func(t *testing.T) {
		c := e.client()
		r := e.doJSON(c, "POST", "/api/login", map[string]string{"username": "bob", "password": "correct horse"})
		if r.status != http.StatusOK {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		var u userJSON
		r.json(t, &u)
		if u.Username != "bob" {
			t.Fatalf("user = %+v", u)
		}
		resp := &http.Response{Header: r.header}
		var ck *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "poster_session" {
				ck = c
			}
		}
		if ck == nil {
			t.Fatalf("no session cookie in %v", r.header["Set-Cookie"])
		}
		if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Secure || ck.MaxAge != 7*24*3600 || len(ck.Value) < 43 {
			t.Fatalf("cookie = %+v", ck)
		}
		if r := e.do(c, "GET", "/api/user", "", nil); r.status != http.StatusOK {
			t.Fatalf("GET /api/user = %d %s", r.status, r.body)
		}
	})

	// Anyone may send X-Forwarded-Proto; without the proxy secret it is not
	// believed (forwarded_test.go has the load balancer's case).
	t.Run("ForwardedProtoIgnored", func(t *testing.T) {
		r := e.doJSON(e.client(), "POST", "/api/login", map[string]string{"username": "bob", "password": "correct horse"}, "X-Forwarded-Proto", "https")
		if sc := r.header.Get("Set-Cookie"); sc == "" || strings.Contains(sc, "Secure") {
			t.Fatalf("Set-Cookie = %q, want a cookie without Secure", sc)
		}
	})

	t.Run("ErrUnauthorized", func(t *testing.T) {
		before := e.snapshot()
		wrong := e.doJSON(e.client(), "POST", "/api/login", map[string]string{"username": "bob", "password": "wrong password"})
		unknown := e.doJSON(e.client(), "POST", "/api/login", map[string]string{"username": "nobody", "password": "correct horse"})
		for _, r := range []result{wrong, unknown} {
			if r.status != http.StatusUnauthorized || r.header.Get("Set-Cookie") != "" {
				t.Fatalf("status %d cookie %q", r.status, r.header.Get("Set-Cookie"))
			}
		}
		// One message for both, so usernames cannot be probed.
		if a, b := wrong.errMsg(t), unknown.errMsg(t); a != b {
			t.Fatalf("messages differ: %q vs %q", a, b)
		}
		if after := e.snapshot(); after != before {
			t.Fatalf("store changed: %s -> %s", before, after)
		}
	})
}

func TestSession(t *testing.T) {
	e := newEnv(t)

	t.Run("NotLoggedIn", func(t *testing.T) {
		for _, cookie := range []string{"", "poster_session=garbage", "poster_session=" + strings.Repeat("A", 43)} {
			r := e.do(nil, "GET", "/api/user", "", nil, "Cookie", cookie)
			if r.status != http.StatusUnauthorized {
				t.Fatalf("cookie %q: status %d", cookie, r.status)
			}
			r.errMsg(t)
		}
	})

	t.Run("Logout", func(t *testing.T) {
		c := e.login("carol")
		other := e.login("dave")
		before := e.snapshot()
		r := e.do(c, "DELETE", "/api/logout", "", nil)
		if r.status != http.StatusNoContent {
			t.Fatalf("logout = %d %s", r.status, r.body)
		}
		if sc := r.header.Get("Set-Cookie"); !strings.Contains(sc, "Max-Age=0") {
			t.Fatalf("logout Set-Cookie = %q, want the cookie cleared", sc)
		}
		if after := e.snapshot(); after == before {
			t.Fatal("the session is still stored")
		}
		if r := e.do(c, "GET", "/api/user", "", nil); r.status != http.StatusUnauthorized {
			t.Fatalf("after logout: %d", r.status)
		}
		if r := e.do(other, "GET", "/api/user", "", nil); r.status != http.StatusOK {
			t.Fatalf("another user's session ended too: %d", r.status)
		}
		// Logging out twice, or without a session, is harmless.
		if r := e.do(e.client(), "DELETE", "/api/logout", "", nil); r.status != http.StatusNoContent {
			t.Fatalf("logout without session = %d", r.status)
		}
	})
}

func TestPosts(t *testing.T) {
	e := newEnv(t)
	c := e.login("erin")

	t.Run("Create", func(t *testing.T) {
		r := e.doJSON(c, "POST", "/api/posts", map[string]string{"content": "  <b>hello</b>\n"})
		if r.status != http.StatusCreated {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		var p postJSON
		r.json(t, &p)
		if p.ID == 0 || p.Author != "erin" || p.Content != "<b>hello</b>" {
			t.Fatalf("post = %+v", p)
		}
		if ts, err := time.Parse(time.RFC3339, p.CreatedAt); err != nil || !strings.HasSuffix(p.CreatedAt, "Z") || ts.IsZero() {
			t.Fatalf("created_at %q is not RFC 3339 UTC: %v", p.CreatedAt, err)
		}
		// 500 characters of two bytes each is within the limit.
		if r := e.doJSON(c, "POST", "/api/posts", map[string]string{"content": strings.Repeat("ж", 500)}); r.status != http.StatusCreated {
			t.Fatalf("500 characters: %d %s", r.status, r.body)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		for _, content := range []string{"", "   \n\t", strings.Repeat("x", 501), strings.Repeat("ж", 501)} {
			before := e.snapshot()
			r := e.doJSON(c, "POST", "/api/posts", map[string]string{"content": content})
			if r.status != http.StatusBadRequest {
				t.Errorf("%d bytes: status %d", len(content), r.status)
			}
			r.errMsg(t)
			if after := e.snapshot(); after != before {
				t.Fatalf("store changed: %s -> %s", before, after)
			}
		}
	})

	t.Run("ErrUnauthorized", func(t *testing.T) {
		before := e.snapshot()
		r := e.doJSON(e.client(), "POST", "/api/posts", map[string]string{"content": "anonymous"})
		if r.status != http.StatusUnauthorized {
			t.Fatalf("status %d", r.status)
		}
		r.errMsg(t)
		if after := e.snapshot(); after != before {
			t.Fatalf("store changed: %s -> %s", before, after)
		}
	})

	t.Run("Idempotency", func(t *testing.T) {
		first := e.doJSON(c, "POST", "/api/posts", map[string]string{"content": "only once"}, "Idempotency-Key", "abc-123")
		if first.status != http.StatusCreated {
			t.Fatalf("first: %d %s", first.status, first.body)
		}
		before := e.snapshot()
		again := e.doJSON(c, "POST", "/api/posts", map[string]string{"content": "only once"}, "Idempotency-Key", "abc-123")
		if again.status != http.StatusCreated || !bytes.Equal(again.body, first.body) {
			t.Fatalf("replay: %d %s, want 201 %s", again.status, again.body, first.body)
		}
		if again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatal("replay not marked")
		}
		if after := e.snapshot(); after != before {
			t.Fatalf("replay changed the store: %s -> %s", before, after)
		}
		// Another user's identical key is their own.
		other := e.login("frank")
		if r := e.doJSON(other, "POST", "/api/posts", map[string]string{"content": "mine"}, "Idempotency-Key", "abc-123"); r.status != http.StatusCreated || bytes.Equal(r.body, first.body) {
			t.Fatalf("other user: %d %s", r.status, r.body)
		}
		before = e.snapshot()
		r := e.doJSON(c, "POST", "/api/posts", map[string]string{"content": "x"}, "Idempotency-Key", strings.Repeat("k", 256))
		if r.status != http.StatusBadRequest {
			t.Fatalf("long key: %d", r.status)
		}
		r.errMsg(t)
		if after := e.snapshot(); after != before {
			t.Fatalf("store changed: %s -> %s", before, after)
		}
	})
}

func TestListPosts(t *testing.T) {
	e := newEnv(t)
	c := e.login("gina")
	for i := range 5 {
		e.doJSON(c, "POST", "/api/posts", map[string]string{"content": fmt.Sprint("post ", i)})
	}

	t.Run("Paging", func(t *testing.T) {
		var got []string
		path := "/api/posts?limit=2"
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("paging does not end")
			}
			r := e.do(nil, "GET", path, "", nil)
			if r.status != http.StatusOK {
				t.Fatalf("%s: %d %s", path, r.status, r.body)
			}
			var p pageJSON
			r.json(t, &p)
			for _, post := range p.Posts {
				got = append(got, post.Content)
			}
			if p.NextBefore == nil {
				break
			}
			path = fmt.Sprintf("/api/posts?limit=2&before=%d", *p.NextBefore)
		}
		if s := strings.Join(got, ","); s != "post 4,post 3,post 2,post 1,post 0" {
			t.Fatalf("got %s", s)
		}
	})

	t.Run("Default", func(t *testing.T) {
		for i := range app.DefaultPostLimit {
			e.doJSON(c, "POST", "/api/posts", map[string]string{"content": fmt.Sprint("more ", i)})
		}
		var p pageJSON
		e.do(nil, "GET", "/api/posts", "", nil).json(t, &p)
		if len(p.Posts) != app.DefaultPostLimit || p.NextBefore == nil || *p.NextBefore != p.Posts[len(p.Posts)-1].ID {
			t.Fatalf("%d posts, next %v", len(p.Posts), p.NextBefore)
		}
		e.do(nil, "GET", "/api/posts?limit=200", "", nil).json(t, &p)
		if len(p.Posts) != app.DefaultPostLimit+5 || p.NextBefore != nil {
			t.Fatalf("limit=200: %d posts, next %v", len(p.Posts), p.NextBefore)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		for _, q := range []string{"limit=0", "limit=201", "limit=abc", "limit=-1", "limit=", "before=0", "before=x", "before=-5", "before=1.5"} {
			r := e.do(nil, "GET", "/api/posts?"+q, "", nil)
			if r.status != http.StatusBadRequest {
				t.Errorf("%s: status %d", q, r.status)
				continue
			}
			r.errMsg(t)
		}
	})
}
