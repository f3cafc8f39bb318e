package app

import (
	"context"
	"time"
)

// SessionPoster is implemented by stores that can check a session and store
// a post in one transaction. A post then costs one trip to the store instead
// of two, and a session that ends (a logout through any backend) cannot
// post once its end is committed, even by a request already under way.
type SessionPoster interface {
	// CreateSessionPost is CreatePost by the user of the session with the
	// given token hash, live at now; it sets p.AuthorID. With no such
	// session it stores nothing and returns EUNAUTHORIZED.
	CreateSessionPost(ctx context.Context, tokenHash []byte, now time.Time, p *Post, idempotencyKey string) (first *Post, replayed bool, err error)
}
