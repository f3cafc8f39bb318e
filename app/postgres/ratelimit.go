package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/posterctl/posterctl/app"
)

// sweepBatch caps how many ended counters one hit deletes, so a hit after a
// quiet spell stays a short statement.
const sweepBatch = 100

// HitRate counts one event against key. The upsert locks the counter's row,
// so hits from several backends at once never lose a count.
func (db *DB) HitRate(ctx context.Context, key string, window time.Duration) (app.Rate, error) {
	if err := app.ValidateRateKey(key, window); err != nil {
		return app.Rate{}, err
	}
	now := stamp(db.Now())
	var r app.Rate
	err := db.autocommit(ctx, func(ctx context.Context, q querier) error {
		// SKIP LOCKED: hits at the same moment sweep different rows instead
		// of queueing on the same ones.
		if _, err := q.Exec(ctx, `
			DELETE FROM rate_counters WHERE key IN (
				SELECT key FROM rate_counters WHERE expires_at <= $1
				LIMIT $2 FOR UPDATE SKIP LOCKED)`,
			now, sweepBatch); err != nil {
			return storeErr("sweep rate counters", err)
		}
		err := q.QueryRow(ctx, `
			INSERT INTO rate_counters (key, count, expires_at) VALUES ($1, 1, $2)
			ON CONFLICT (key) DO UPDATE SET
				count      = CASE WHEN rate_counters.expires_at <= $3 THEN 1 ELSE rate_counters.count + 1 END,
				expires_at = CASE WHEN rate_counters.expires_at <= $3 THEN excluded.expires_at ELSE rate_counters.expires_at END
			RETURNING count, expires_at`,
			key, now.Add(window.Truncate(time.Millisecond)), now).Scan(&r.Count, &r.Until)
		if err != nil {
			return storeErr("hit rate counter", err)
		}
		return nil
	})
	if err != nil {
		return app.Rate{}, err
	}
	r.Until = r.Until.UTC()
	return r, nil
}

// PeekRate reads key's counter.
func (db *DB) PeekRate(ctx context.Context, key string) (app.Rate, error) {
	ctx, cancel := db.callContext(ctx)
	defer cancel()
	var r app.Rate
	err := db.pool.QueryRow(ctx,
		`SELECT count, expires_at FROM rate_counters WHERE key = $1 AND expires_at > $2`,
		key, stamp(db.Now())).Scan(&r.Count, &r.Until)
	if errors.Is(err, pgx.ErrNoRows) {
		return app.Rate{}, nil
	} else if err != nil {
		return app.Rate{}, storeErr("peek rate counter", err)
	}
	r.Until = r.Until.UTC()
	return r, nil
}

// ResetRate deletes key's counter.
func (db *DB) ResetRate(ctx context.Context, key string) error {
	return db.autocommit(ctx, func(ctx context.Context, q querier) error {
		if _, err := q.Exec(ctx, `DELETE FROM rate_counters WHERE key = $1`, key); err != nil {
			return storeErr("reset rate counter", err)
		}
		return nil
	})
}
