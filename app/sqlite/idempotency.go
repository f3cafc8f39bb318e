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
func findIdempotent(ctx context.Context, tx *sql.Tx, userID int64, key string, now time.Time) (*app.Post, error) {
	cutoff := millis(now.Add(-app.IdempotencyTTL))
	if _, err := tx.ExecContext(ctx,
		`DELETE FROM idempotency_keys WHERE user_id = ? AND created_at <= ?`, userID, cutoff); err != nil {
		return nil, storeErr("expire idempotency keys", err)
	}
	var (
		p       app.Post
		created int64
	)
	err := tx.QueryRowContext(ctx, `
		SELECT p.id, p.user_id, u.username, p.content, p.created_at
		FROM idempotency_keys k
		JOIN posts p ON p.id = k.post_id
		JOIN users u ON u.id = p.user_id
		WHERE k.user_id = ? AND k.key = ?`, userID, key).
		Scan(&p.ID, &p.AuthorID, &p.Author, &p.Content, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, storeErr("find idempotency key", err)
	}
	p.CreatedAt = fromMillis(created)
	return &p, nil
}

func saveIdempotent(ctx context.Context, tx *sql.Tx, userID int64, key string, postID int64, now time.Time) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO idempotency_keys (user_id, key, post_id, created_at) VALUES (?, ?, ?, ?)`,
		userID, key, postID, millis(now))
	if err != nil {
		return storeErr("save idempotency key", err)
	}
	return nil
}
