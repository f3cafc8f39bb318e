package web

import (
	"net/http"
	"strconv"

	"github.com/posterctl/posterctl/app"
)

// postPage is the response of GET /api/posts. NextBefore is the cursor for
// the next (older) page, null when there is none.
type postPage struct {
	Posts      []*app.Post `json:"posts"`
	NextBefore *int64      `json:"next_before"`
}

func (s *Server) handleListPosts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := app.DefaultPostLimit
	if v := q.Get("limit"); v != "" || q.Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > app.MaxPostLimit {
			s.Error(w, r, app.Errorf(app.EINVALID, "limit must be a whole number from 1 to %d", app.MaxPostLimit))
			return
		}
		limit = n
	}
	var before int64
	if v := q.Get("before"); v != "" || q.Has("before") {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			s.Error(w, r, app.Errorf(app.EINVALID, "before must be a post id (a positive whole number)"))
			return
		}
		before = n
	}
	if before == 0 {
		if done, err := s.newestPage(r.Context(), w, limit); err != nil {
			s.Error(w, r, err)
			return
		} else if done {
			return
		}
	}
	// One extra row tells whether an older page exists.
	posts, err := s.Store.FindPosts(r.Context(), app.PostFilter{Before: before, Limit: limit + 1})
	if err != nil {
		s.Error(w, r, err)
		return
	}
	page := postPage{Posts: posts}
	if len(posts) > limit {
		page.Posts = posts[:limit]
		next := page.Posts[limit-1].ID
		page.NextBefore = &next
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) handleCreatePost(w http.ResponseWriter, r *http.Request) {
	sess, err := s.authenticate(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > app.MaxIdempotencyKey {
		s.Error(w, r, app.Errorf(app.EINVALID, "Idempotency-Key is longer than %d bytes", app.MaxIdempotencyKey))
		return
	}
	var in struct {
		Content string `json:"content"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.Error(w, r, err)
		return
	}
	content, err := app.NormalizePostContent(in.Content)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	p, replayed, err := s.Store.CreatePost(r.Context(), &app.Post{AuthorID: sess.UserID, Content: content}, key)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writePost(w, http.StatusCreated, p)
}
