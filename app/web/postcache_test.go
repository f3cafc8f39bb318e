package web_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/posterctl/posterctl/app"
	"github.com/posterctl/posterctl/app/sqlite"
	"github.com/posterctl/posterctl/app/web"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
)

// unversioned hides the store's Version, so a server over it never caches.
type unversioned struct{ app.Store }

// TestListPosts_CacheFresh writes through a second store on the same file,
// as another backend would, and reads through the server after each write:
// every page must list the new post and be byte for byte the page of a
// server that does not cache.
func TestListPosts_CacheFresh(t *testing.T) {
	e := newEnv(t)
	e.login("hana")
	u, _, err := e.db.FindCredentials(context.Background(), "hana")
	if err != nil {
		t.Fatal(err)
	}
	other := sqlite.NewDB(e.db.Path)
	if err := other.Open(); err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	plain := httptest.NewServer(web.NewServer(unversioned{e.db}, "backend-test", zerolog.Nop()).Handler())
	defer plain.Close()
	get := func(base, path string) []byte {
		t.Helper()
		resp, err := plain.Client().Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s%s = %d %s", base, path, resp.StatusCode, b.Bytes())
		}
		return b.Bytes()
	}

	for i := range 120 {
		paths := []string{"/api/posts", "/api/posts?limit=1", "/api/posts?limit=7", "/api/posts?limit=200"}
		path := paths[i%len(paths)]
		get(e.ts.URL, path) // fills the cache
		p, _, err := other.CreatePost(context.Background(), &app.Post{AuthorID: u.ID, Content: fmt.Sprint("through the other store ", i)}, "")
		if err != nil {
			t.Fatal(err)
		}
		got, want := get(e.ts.URL, path), get(plain.URL, path)
		if !bytes.Equal(got, want) {
			t.Fatalf("write %d, %s:\n cached %s\n  plain %s", i, path, got, want)
		}
		if !bytes.Contains(got, fmt.Appendf(nil, `{"posts":[{"id":%d,`, p.ID)) {
			t.Fatalf("write %d: post %d is not first in %s", i, p.ID, got)
		}
	}
}

// fakeVersion is a store whose version the test sets, counting the reads of
// posts.
type fakeVersion struct {
	app.Store
	ver     atomic.Uint64
	err     error
	findErr error
	finds   atomic.Int64
}

func (f *fakeVersion) Version(context.Context) (uint64, error) { return f.ver.Load(), f.err }

func (f *fakeVersion) FindPosts(ctx context.Context, pf app.PostFilter) ([]*app.Post, error) {
	f.finds.Add(1)
	if f.findErr != nil {
		return nil, f.findErr
	}
	return f.Store.FindPosts(ctx, pf)
}

func fakeEnv(t *testing.T, f *fakeVersion) *httptest.Server {
	t.Helper()
	db := sqlite.NewDB(filepath.Join(t.TempDir(), "poster.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	f.Store = db
	srv := web.NewServer(f, "backend-test", zerolog.Nop())
	srv.BcryptCost = bcrypt.MinCost
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		db.Close()
	})
	return ts
}

func status(t *testing.T, ts *httptest.Server, path string) (int, http.Header) {
	t.Helper()
	resp, err := ts.Client().Get(ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// TestListPosts_CacheFollowsVersion: pages up to the default limit come from
// one read while the version holds; a new version, a larger page or a
// cursor reads again.
func TestListPosts_CacheFollowsVersion(t *testing.T) {
	f := &fakeVersion{}
	f.ver.Store(1)
	ts := fakeEnv(t, f)
	for _, path := range []string{"/api/posts", "/api/posts?limit=1", "/api/posts?limit=50", "/api/posts"} {
		if s, _ := status(t, ts, path); s != http.StatusOK {
			t.Fatalf("%s = %d", path, s)
		}
	}
	if n := f.finds.Load(); n != 1 {
		t.Fatalf("%d reads of posts at one version, want 1", n)
	}
	f.ver.Store(2)
	status(t, ts, "/api/posts?limit=1")
	status(t, ts, "/api/posts?limit=1")
	if n := f.finds.Load(); n != 2 {
		t.Fatalf("%d reads after a new version, want 2", n)
	}
	// The store holds no post, so the entry is the whole store: a larger
	// page needs no read, a cursor always reads.
	status(t, ts, "/api/posts?limit=200")
	status(t, ts, "/api/posts?before=5")
	if n := f.finds.Load(); n != 3 {
		t.Fatalf("%d reads, want 3", n)
	}
}

// TestListPosts_ErrFill: a failed read that would fill the cache answers
// with its error and leaves nothing cached.
func TestListPosts_ErrFill(t *testing.T) {
	f := &fakeVersion{findErr: &app.Error{Code: app.EUNAVAILABLE, Message: "the store is busy; try again"}}
	f.ver.Store(1)
	ts := fakeEnv(t, f)
	if s, _ := status(t, ts, "/api/posts"); s != http.StatusServiceUnavailable {
		t.Fatalf("status %d", s)
	}
	f.findErr = nil
	if s, _ := status(t, ts, "/api/posts"); s != http.StatusOK {
		t.Fatalf("status %d after the store recovered", s)
	}
	if n := f.finds.Load(); n != 2 {
		t.Fatalf("%d reads, want 2", n)
	}
}

// TestListPosts_ErrVersion: a store that cannot tell its version answers
// with its error, as a failed read of posts would.
func TestListPosts_ErrVersion(t *testing.T) {
	f := &fakeVersion{err: &app.Error{Code: app.EUNAVAILABLE, Message: "the store is busy; try again"}}
	ts := fakeEnv(t, f)
	s, h := status(t, ts, "/api/posts")
	if s != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q", s, h.Get("Retry-After"))
	}
	if n := f.finds.Load(); n != 0 {
		t.Fatalf("%d reads of posts", n)
	}
}
