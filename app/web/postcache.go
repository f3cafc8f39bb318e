package web

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/posterctl/posterctl/app"
)

// postCache keeps the newest posts, encoded, for stores that implement
// app.Versioned: the newest page is what nearly every GET /api/posts asks
// for, and posts never change once written. An entry is used only while the
// store's version is the one read before its posts were, so a post
// committed through any backend is listed on the next request.
type postCache struct {
	cur atomic.Pointer[postEntry]
}

// postEntry is the newest posts at one store version. Never changed once
// made, so requests share it without a lock.
type postEntry struct {
	ver uint64
	// list is the posts' JSON joined by commas; ends[i] is where post i
	// ends, so list[:ends[n-1]] is the newest n.
	list []byte
	ends []int
	ids  []int64
	// all is set when the store holds no more posts than ids.
	all bool
}

// minCachedPosts is the fewest rows fetched to fill the cache, so that one
// entry serves the default page and every smaller one.
const minCachedPosts = app.DefaultPostLimit + 1

func newPostEntry(ver uint64, posts []*app.Post, asked int) *postEntry {
	e := &postEntry{ver: ver, ends: make([]int, len(posts)), ids: make([]int64, len(posts)), all: len(posts) < asked}
	b := make([]byte, 0, 160*len(posts))
	for i, p := range posts {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendPost(b, p)
		e.ends[i], e.ids[i] = len(b), p.ID
	}
	e.list = b
	return e
}

// serves reports whether the entry answers a newest page of limit posts.
func (e *postEntry) serves(limit int) bool { return e.all || len(e.ids) > limit }

var (
	pageOpen      = []byte(`{"posts":[`)
	pageNoNext    = []byte("],\"next_before\":null}\n")
	pageNextStart = []byte(`],"next_before":`)
)

// write answers with the newest page of limit posts.
func (e *postEntry) write(w http.ResponseWriter, limit int) {
	n := min(limit, len(e.ids))
	var list []byte
	if n > 0 {
		list = e.list[:e.ends[n-1]]
	}
	if len(e.ids) <= limit {
		writeRawJSON(w, http.StatusOK, pageOpen, list, pageNoNext)
		return
	}
	var tail [48]byte
	t := append(tail[:0], pageNextStart...)
	t = strconv.AppendInt(t, e.ids[limit-1], 10)
	t = append(t, "}\n"...)
	writeRawJSON(w, http.StatusOK, pageOpen, list, t)
}

// newestPage answers GET /api/posts without a cursor from the cache when
// the store can say that it is current, filling it when it is not. It
// reports false, having written nothing, for a store that cannot say; an
// error is the store's and is for the caller to answer.
func (s *Server) newestPage(ctx context.Context, w http.ResponseWriter, limit int) (bool, error) {
	vs, ok := s.Store.(app.Versioned)
	if !ok {
		return false, nil
	}
	// The version is read before the posts: a commit between the two
	// makes the entry newer than its version says, never older, and the
	// next request, seeing another version, reads the posts again.
	ver, err := vs.Version(ctx)
	if err != nil {
		return false, err
	}
	if e := s.posts.cur.Load(); e != nil && e.ver == ver && e.serves(limit) {
		e.write(w, limit)
		return true, nil
	}
	asked := max(limit+1, minCachedPosts)
	posts, err := s.Store.FindPosts(ctx, app.PostFilter{Limit: asked})
	if err != nil {
		return false, err
	}
	e := newPostEntry(ver, posts, asked)
	s.posts.cur.Store(e)
	e.write(w, limit)
	return true, nil
}
