package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app"
	"github.com/posterctl/posterctl/app/web"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
)

// downStore is a store whose database cannot be reached: every call fails
// the way app/postgres fails while its server is down.
type downStore struct{ app.Store }

var errDown = &app.Error{Code: app.EUNAVAILABLE, Message: "store unavailable: cannot connect to the database server"}

func (downStore) Ping(context.Context) error { return errDown }
func (downStore) CreateUser(context.Context, *app.User, []byte) error {
	return errDown
}
func (downStore) FindCredentials(context.Context, string) (*app.User, []byte, error) {
	return nil, nil, errDown
}
func (downStore) CreateSession(context.Context, *app.Session) error { return errDown }
func (downStore) FindSession(context.Context, []byte, time.Time) (*app.Session, error) {
	return nil, errDown
}
func (downStore) DeleteSession(context.Context, []byte) error { return errDown }
func (downStore) CreatePost(context.Context, *app.Post, string) (*app.Post, bool, error) {
	return nil, false, errDown
}
func (downStore) FindPosts(context.Context, app.PostFilter) ([]*app.Post, error) {
	return nil, errDown
}
func (downStore) HitRate(context.Context, string, time.Duration) (app.Rate, error) {
	return app.Rate{}, errDown
}
func (downStore) PeekRate(context.Context, string) (app.Rate, error) { return app.Rate{}, errDown }
func (downStore) ResetRate(context.Context, string) error            { return errDown }
func (downStore) Close() error                                       { return nil }

// TestStoreUnavailable: every request that needs the store answers 503 JSON
// with Retry-After and the store's reason, and /healthz names the cause;
// requests that do not need the store still work.
func TestStoreUnavailable(t *testing.T) {
	srv := web.NewServer(downStore{}, "backend-test", zerolog.Nop())
	srv.BcryptCost = bcrypt.MinCost
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	e := &env{t: t, ts: ts}
	cookie := "poster_session=" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	creds := map[string]string{"username": "alice", "password": "alice-password"}

	for _, tc := range []struct {
		name string
		do   func() result
	}{
		{"register", func() result { return e.doJSON(nil, "POST", "/api/register", creds) }},
		{"login", func() result { return e.doJSON(nil, "POST", "/api/login", creds) }},
		{"user", func() result { return e.do(nil, "GET", "/api/user", "", nil, "Cookie", cookie) }},
		{"logout", func() result { return e.do(nil, "DELETE", "/api/logout", "", nil, "Cookie", cookie) }},
		{"list posts", func() result { return e.do(nil, "GET", "/api/posts", "", nil) }},
		{"create post", func() result {
			return e.doJSON(nil, "POST", "/api/posts", map[string]string{"content": "hi"}, "Cookie", cookie)
		}},
		{"healthz", func() result { return e.do(nil, "GET", "/healthz", "", nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.do()
			if r.status != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503: %s", r.status, r.body)
			}
			if msg := r.errMsg(t); msg != errDown.Message {
				t.Fatalf("error %q, want %q", msg, errDown.Message)
			}
			if tc.name != "healthz" && r.header.Get("Retry-After") == "" {
				t.Errorf("no Retry-After on a 503")
			}
		})
	}
	if r := e.do(nil, "GET", "/api/user", "", nil); r.status != http.StatusUnauthorized {
		t.Errorf("GET /api/user without a cookie = %d, want 401 (no store needed)", r.status)
	}
	if r := e.do(nil, "GET", "/", "", nil); r.status != http.StatusOK {
		t.Errorf("GET / = %d, want 200 (the page needs no store)", r.status)
	}
}
