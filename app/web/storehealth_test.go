package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posterctl/posterctl/app"
	"github.com/posterctl/posterctl/app/sqlite"
	"github.com/posterctl/posterctl/app/web"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
)

// TestHealthz_StoreID: /healthz reports the store id, and a store id other
// than ExpectStoreID keeps the backend out of rotation (503 with the
// reason).
func TestHealthz_StoreID(t *testing.T) {
	e := newEnv(t)
	id, err := e.db.StoreID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]string
	r := e.do(nil, "GET", "/healthz", "", nil)
	r.json(t, &v)
	if r.status != http.StatusOK || v["status"] != "ok" || v["store_id"] != id {
		t.Fatalf("healthz = %d %s, want 200 with store_id %s", r.status, r.body, id)
	}

	for _, tc := range []struct {
		expect string
		status int
	}{{id, http.StatusOK}, {"0123456789abcdef0123456789abcdef", http.StatusServiceUnavailable}} {
		srv := web.NewServer(e.db, "backend-test", zerolog.Nop())
		srv.ExpectStoreID = tc.expect
		ts := httptest.NewServer(srv.Handler())
		e2 := &env{t: t, ts: ts}
		r := e2.do(nil, "GET", "/healthz", "", nil)
		ts.Close()
		var v map[string]string
		r.json(t, &v)
		if r.status != tc.status || v["store_id"] != id {
			t.Fatalf("ExpectStoreID %s: healthz = %d %s, want %d", tc.expect, r.status, r.body, tc.status)
		}
		if tc.status != http.StatusOK && (v["status"] != "unavailable" || !strings.Contains(v["error"], "not the cluster's "+tc.expect)) {
			t.Fatalf("healthz = %s, want the reason", r.body)
		}
	}
}

// fullStore is a store whose disk is full: writes fail with ESTORAGE, reads
// work, health is degraded.
type fullStore struct{ app.Store }

var errFull = &app.Error{Code: app.ESTORAGE, Message: "the disk of the store is full; try again later"}

func (fullStore) StoreHealth(context.Context) (string, error) { return "the disk is full", nil }
func (fullStore) CreatePost(context.Context, *app.Post, string) (*app.Post, bool, error) {
	return nil, false, errFull
}

// TestDiskFull: a full disk answers writes 507 JSON with Retry-After, keeps
// /healthz at 200 "degraded" with the reason, and reads go on.
func TestDiskFull(t *testing.T) {
	e := newEnv(t)
	c := e.login("alice")
	srv := web.NewServer(fullStore{e.db}, "backend-test", zerolog.Nop())
	srv.BcryptCost = bcrypt.MinCost
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	full := &env{t: t, ts: ts}

	r := full.doJSON(c, "POST", "/api/posts", map[string]string{"content": "hello"})
	if r.status != http.StatusInsufficientStorage || r.header.Get("Retry-After") == "" || r.errMsg(t) != errFull.Message {
		t.Fatalf("post on a full disk = %d %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if r := full.do(c, "GET", "/api/posts", "", nil); r.status != http.StatusOK {
		t.Fatalf("read on a full disk = %d %s", r.status, r.body)
	}
	var v map[string]string
	r = full.do(nil, "GET", "/healthz", "", nil)
	r.json(t, &v)
	if r.status != http.StatusOK || v["status"] != "degraded" || v["reason"] != "the disk is full" || v["store_id"] == "" {
		t.Fatalf("healthz on a full disk = %d %s", r.status, r.body)
	}
}

// TestHealthz_Replaced: another file moved over the SQLite store makes
// /healthz 503 with the reason and writes 503 JSON.
func TestHealthz_Replaced(t *testing.T) {
	e := newEnv(t)
	c := e.login("alice")
	other := filepath.Join(t.TempDir(), "other.db")
	o := sqlite.NewDB(other)
	if err := o.Open(); err != nil {
		t.Fatal(err)
	}
	o.Close()
	if err := os.Rename(other, e.db.Path); err != nil {
		t.Fatal(err)
	}
	var v map[string]string
	r := e.do(nil, "GET", "/healthz", "", nil)
	r.json(t, &v)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(v["error"], "was replaced by another store") {
		t.Fatalf("healthz after the replacement = %d %s", r.status, r.body)
	}
	r = e.doJSON(c, "POST", "/api/posts", map[string]string{"content": "hello"})
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.errMsg(t), "was replaced") {
		t.Fatalf("post after the replacement = %d %s", r.status, r.body)
	}
}
