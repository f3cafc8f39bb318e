package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/posterctl/posterctl/app"
)

// sweepBatch caps how many ended counters one hit deletes, so a hit after a
// quiet spell stays a short transaction.
const sweepBatch = 100

// HitRate counts one event against key in one IMMEDIATE transaction, so hits
// from several processes never lose a count.
func (db *DB) HitRate(ctx context.Context, key string, window time.Duration) (app.Rate, error) {
	if err := app.ValidateRateKey(key, window); err != nil {
		return app.Rate{}, err
	}
	now := millis(db.Now())
	var r app.Rate
	err := db.inTx(ctx, func(ctx context.Context, tx *sql.Tx, _ *gen) error {
		if _, err := tx.ExecContext(ctx, `
			DELETE FROM rate_counters WHERE key IN (
				SELECT key FROM rate_counters WHERE expires_at <= ? LIMIT ?)`,
			now, sweepBatch); err != nil {
			return storeErr("sweep rate counters", err)
		}
		var until int64
		err := tx.QueryRowContext(ctx, `
			INSERT INTO rate_counters (key, count, expires_at) VALUES (?1, 1, ?2)
			ON CONFLICT (key) DO UPDATE SET
				count      = CASE WHEN rate_counters.expires_at <= ?3 THEN 1 ELSE rate_counters.count + 1 END,
				expires_at = CASE WHEN rate_counters.expires_at <= ?3 THEN excluded.expires_at ELSE rate_counters.expires_at END
			RETURNING count, expires_at`,
			key, now+window.Milliseconds(), now).Scan(&r.Count, &until)
		if err != nil {
			return storeErr("hit rate counter", err)
		}
		r.Until = fromMillis(until)
		return nil
	})
	if err != nil {
		return app.Rate{}, err
	}
	return r, nil
}

// PeekRate reads key's counter on the read pool.
func (db *DB) PeekRate(ctx context.Context, key string) (app.Rate, error) {
	var (
		r     app.Rate
		until int64
	)
	err := db.read.QueryRowContext(ctx,
		`SELECT count, expires_at FROM rate_counters WHERE key = ? AND expires_at > ?`,
		key, millis(db.Now())).Scan(&r.Count, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return app.Rate{}, nil
	} else if err != nil {
		return app.Rate{}, storeErr("peek rate counter", err)
	}
	r.Until = fromMillis(until)
	return r, nil
}

// ResetRate deletes key's counter.
func (db *DB) ResetRate(ctx context.Context, key string) error {
	return db.inTx(ctx, func(ctx context.Context, tx *sql.Tx, _ *gen) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM rate_counters WHERE key = ?`, key); err != nil {
			return storeErr("reset rate counter", err)
		}
		return nil
	})
}
