package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/posterctl/posterctl/app"
)

// claimKey makes this transaction the owner of (userID, key), or reports
// false when a live claim by a committed transaction exists.
//
// The insert is the check: when another transaction holds an uncommitted
// claim on the same key, PostgreSQL makes this INSERT wait for it, then
// sees its row (or, if it rolled back, inserts ours). So two requests with
// one key, through any backends, can never both create a post. A claim older
// than app.IdempotencyTTL is taken over in the same statement, so the key
// can be reused after a day.
func claimKey(ctx context.Context, tx pgx.Tx, userID int64, key string, now time.Time) (bool, error) {
	// The same statement drops this user's other expired keys, so the
	// table stays small; SKIP LOCKED, so that it never waits for (or
	// deadlocks with) a concurrent sweep.
	tag, err := tx.Exec(ctx, `
		WITH swept AS (
			DELETE FROM idempotency_keys WHERE (user_id, key) IN (
				SELECT user_id, key FROM idempotency_keys
				WHERE user_id = $1 AND key <> $2 AND created_at <= $4
				LIMIT $5 FOR UPDATE SKIP LOCKED))
		INSERT INTO idempotency_keys (user_id, key, post_id, created_at) VALUES ($1, $2, NULL, $3)
		ON CONFLICT (user_id, key) DO UPDATE SET post_id = NULL, created_at = EXCLUDED.created_at
		WHERE idempotency_keys.created_at <= $4`,
		userID, key, now, now.Add(-app.IdempotencyTTL), expireBatch)
	if isForeignKeyViolation(err) {
		return false, app.Errorf(app.ENOTFOUND, "author not found")
	} else if err != nil {
		return false, storeErr("claim idempotency key", err)
	}
	return tag.RowsAffected() == 1, nil
}
