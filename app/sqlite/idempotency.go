package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/posterctl/posterctl/app"
)

// findIdempotent returns the post an unexpired key points at, or nil. Expired
// keys of this user are dropped first, so the key can be reused after the TTL
// and the table stays small.
func findIdempotent(ctx context.Context, tx *sql.Tx, g *gen, userID int64, key string, now time.Time) (*app.Post, error) {
	cutoff := millis(now.Add(-app.IdempotencyTTL))
	if _, err := tx.StmtContext(ctx, g.st.expireKeys).ExecContext(ctx, userID, cutoff); err != nil {
		return nil, storeErr("expire idempotency keys", err)
	}
	var (
		p       app.Post
		created int64
	)
	err := tx.StmtContext(ctx, g.st.findKey).QueryRowContext(ctx, userID, key).
		Scan(&p.ID, &p.AuthorID, &p.Author, &p.Content, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, storeErr("find idempotency key", err)
	}
	p.CreatedAt = fromMillis(created)
	return &p, nil
}

func saveIdempotent(ctx context.Context, tx *sql.Tx, g *gen, userID int64, key string, postID int64, now time.Time) error {
	_, err := tx.StmtContext(ctx, g.st.saveKey).ExecContext(ctx, userID, key, postID, millis(now))
	if err != nil {
		return storeErr("save idempotency key", err)
	}
	return nil
}
