package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/posterctl/posterctl/app"
)

var _ app.SessionPoster = (*DB)(nil)

// CreateSessionPost checks the session in the write transaction that stores
// the post: the write lock makes that read the newest state, so a logout
// committed by any backend before it is seen, and the author's name comes
// with the session.
func (db *DB) CreateSessionPost(ctx context.Context, tokenHash []byte, now time.Time, p *app.Post, idempotencyKey string) (*app.Post, bool, error) {
	var (
		first    *app.Post
		replayed bool
	)
	if idempotencyKey == "" {
		return db.createSessionPost(ctx, tokenHash, now, p)
	}
	err := db.inTx(ctx, func(ctx context.Context, tx *sql.Tx, g *gen) (err error) {
		err = tx.StmtContext(ctx, g.st.sessionUser).QueryRowContext(ctx, tokenHash, millis(now)).Scan(&p.AuthorID, &p.Author)
		if errors.Is(err, sql.ErrNoRows) {
			return app.Errorf(app.EUNAUTHORIZED, "not logged in")
		} else if err != nil {
			return storeErr("find session", err)
		}
		first, replayed, err = createPostTx(ctx, tx, g, p, idempotencyKey, db.Now())
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return first, replayed, nil
}

// createSessionPost is CreateSessionPost without an idempotency key: one
// statement checks the session, stores the post and names its author.
func (db *DB) createSessionPost(ctx context.Context, tokenHash []byte, now time.Time, p *app.Post) (*app.Post, bool, error) {
	content, err := app.NormalizePostContent(p.Content)
	if err != nil {
		return nil, false, err
	}
	err = db.inTx(ctx, func(ctx context.Context, tx *sql.Tx, g *gen) error {
		p.Content = content
		p.CreatedAt = fromMillis(millis(db.Now()))
		err := tx.StmtContext(ctx, g.st.insertSessionPost).
			QueryRowContext(ctx, p.Content, millis(p.CreatedAt), tokenHash, millis(now)).
			Scan(&p.ID, &p.AuthorID, &p.Author)
		if errors.Is(err, sql.ErrNoRows) {
			return app.Errorf(app.EUNAUTHORIZED, "not logged in")
		} else if err != nil {
			return storeErr("create post", err)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return p, false, nil
}
