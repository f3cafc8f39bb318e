package app

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"
)

// Post limits. Content is counted in characters (runes), not bytes, so that a
// post in Greek or with emoji gets the same room as one in English.
const (
	MaxPostLen        = 500
	DefaultPostLimit  = 50
	MaxPostLimit      = 200
	IdempotencyTTL    = 24 * time.Hour
	MaxIdempotencyKey = 255
)

// Post is a message written by a user.
type Post struct {
	ID        int64     `json:"id"`
	AuthorID  int64     `json:"-"`
	Author    string    `json:"author"`
	Content   string    `json:"content"`
	CreatedAt time.Time `json:"created_at"`
}

// PostFilter selects one page of posts, newest first. Before is an exclusive
// upper bound on the post id (0 means from the newest).
type PostFilter struct {
	Before int64
	Limit  int
}

// Validate refuses only a filter no store can answer. The API's maximum
// limit is the HTTP layer's policy (it asks for one more row to learn
// whether another page exists), not the store's.
func (f PostFilter) Validate() error {
	if f.Limit <= 0 {
		return Errorf(EINVALID, "limit must be positive")
	}
	return nil
}

// PostService stores posts.
type PostService interface {
	// CreatePost stores p (AuthorID and Content set by the caller) and
	// fills in p.ID, p.Author and p.CreatedAt.
	//
	// idempotencyKey makes the create safe to retry: when the same user used
	// the same non-empty key within IdempotencyTTL, it creates nothing and
	// returns the first post with replayed set. The check and the insert are
	// one transaction, so a retry through another backend is caught too.
	CreatePost(ctx context.Context, p *Post, idempotencyKey string) (first *Post, replayed bool, err error)

	// FindPosts returns up to f.Limit posts newest first; a limit below 1
	// is EINVALID.
	FindPosts(ctx context.Context, f PostFilter) ([]*Post, error)
}

// NormalizePostContent trims surrounding whitespace and checks the length.
func NormalizePostContent(s string) (string, error) {
	s = strings.TrimSpace(s)
	n := utf8.RuneCountInString(s)
	if n == 0 {
		return "", Errorf(EINVALID, "post is empty")
	}
	if n > MaxPostLen {
		return "", Errorf(EINVALID, "post is %d characters; the limit is %d", n, MaxPostLen)
	}
	return s, nil
}
