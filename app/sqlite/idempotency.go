package sqlite

import (
	"database/sql"
	"errors"
	"time"

	"github.com/posterctl/posterctl/app"
)

// findIdempotent returns the post an unexpired key points at, or nil. Expired
// keys of this user are dropped first, so the key can be reused after the TTL
// and the table stays small.
func findIdempotent(t *wtx, userID int64, key string, now time.Time) (*app.Post, error) {
	cutoff := millis(now.Add(-app.IdempotencyTTL))
	if _, err := t.exec(rawExpireKeys, userID, cutoff); err != nil {
		return nil, storeErr("expire idempotency keys", err)
	}
	row, err := t.queryRow(rawFindKey, 5, userID, key)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, storeErr("find idempotency key", err)
	}
	var (
		p       app.Post
		created int64
	)
	if err := scanRow(row, &p.ID, &p.AuthorID, &p.Author, &p.Content, &created); err != nil {
		return nil, storeErr("find idempotency key", err)
	}
	p.CreatedAt = fromMillis(created)
	return &p, nil
}

func saveIdempotent(t *wtx, userID int64, key string, postID int64, now time.Time) error {
	if _, err := t.exec(rawSaveKey, userID, key, postID, millis(now)); err != nil {
		return storeErr("save idempotency key", err)
	}
	return nil
}
