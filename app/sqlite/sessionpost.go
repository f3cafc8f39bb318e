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
	err := db.inRawTx(ctx, func(t *wtx) (err error) {
		row, err := t.queryRow(rawSessionUser, 2, tokenHash, millis(now))
		if errors.Is(err, sql.ErrNoRows) {
			return app.Errorf(app.EUNAUTHORIZED, "not logged in")
		} else if err != nil {
			return storeErr("find session", err)
		}
		if err := scanRow(row, &p.AuthorID, &p.Author); err != nil {
			return storeErr("find session", err)
		}
		first, replayed, err = createPostTx(t, p, idempotencyKey, db.Now())
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return first, replayed, nil
}
