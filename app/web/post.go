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
	if sp, ok := s.Store.(app.SessionPoster); ok {
		s.createSessionPost(w, r, sp)
		return
	}
	sess, err := s.authenticate(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	content, key, err := postInput(w, r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	p, replayed, err := s.Store.CreatePost(r.Context(), &app.Post{AuthorID: sess.UserID, Content: content}, key)
	s.createdPost(w, r, p, replayed, err)
}

// createSessionPost has the store check the session in the transaction that
// stores the post. The input is checked first, so a request that is both
// unauthenticated and malformed must still get 401, as when the session is
// checked first.
func (s *Server) createSessionPost(w http.ResponseWriter, r *http.Request, sp app.SessionPoster) {
	hash, ok := sessionTokenHash(r)
	if !ok {
		s.Error(w, r, app.Errorf(app.EUNAUTHORIZED, "not logged in"))
		return
	}
	content, key, err := postInput(w, r)
	if err != nil {
		if _, aerr := s.authenticate(r); aerr != nil {
			err = aerr
		}
		s.Error(w, r, err)
		return
	}
	p, replayed, err := sp.CreateSessionPost(r.Context(), hash, s.Now(), &app.Post{Content: content}, key)
	s.createdPost(w, r, p, replayed, err)
}

// postInput reads the Idempotency-Key and the content of a new post.
func postInput(w http.ResponseWriter, r *http.Request) (content, key string, err error) {
	key = r.Header.Get("Idempotency-Key")
	if len(key) > app.MaxIdempotencyKey {
		return "", "", app.Errorf(app.EINVALID, "Idempotency-Key is longer than %d bytes", app.MaxIdempotencyKey)
	}
	raw, err := decodePostBody(w, r)
	if err != nil {
		return "", "", err
	}
	content, err = app.NormalizePostContent(raw)
	return content, key, err
}

func (s *Server) createdPost(w http.ResponseWriter, r *http.Request, p *app.Post, replayed bool, err error) {
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writePost(w, http.StatusCreated, p)
}
