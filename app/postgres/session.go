package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/posterctl/posterctl/app"
)

// expireBatch caps how many expired sessions one login deletes, so a login
// after a long quiet spell stays a short transaction.
const expireBatch = 1000

// CreateSession stores s and drops sessions that have expired, in one
// statement.
func (db *DB) CreateSession(ctx context.Context, s *app.Session) error {
	now := stamp(db.Now())
	err := db.autocommit(ctx, func(ctx context.Context, q querier) error {
		// SKIP LOCKED: logins running at the same moment each sweep
		// different rows instead of queueing (or deadlocking) on the same.
		_, err := q.Exec(ctx, `
			WITH expired AS (
				DELETE FROM sessions WHERE token_hash IN (
					SELECT token_hash FROM sessions WHERE expires_at <= $3
					LIMIT $5 FOR UPDATE SKIP LOCKED))
			INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
			s.TokenHash, s.UserID, now, stamp(s.ExpiresAt), expireBatch)
		if isForeignKeyViolation(err) {
			return app.Errorf(app.ENOTFOUND, "user not found")
		} else if err != nil {
			return storeErr("create session", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.CreatedAt = now
	return nil
}

// FindSession returns a live session and its user.
func (db *DB) FindSession(ctx context.Context, tokenHash []byte, now time.Time) (*app.Session, error) {
	ctx, cancel := db.callContext(ctx)
	defer cancel()
	var (
		s app.Session
		u app.User
	)
	err := db.pool.QueryRow(ctx, `
		SELECT s.user_id, s.created_at, s.expires_at, u.username, u.created_at
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = $1 AND s.expires_at > $2`,
		tokenHash, now).Scan(&s.UserID, &s.CreatedAt, &s.ExpiresAt, &u.Username, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, app.Errorf(app.ENOTFOUND, "session not found")
	} else if err != nil {
		return nil, storeErr("find session", err)
	}
	s.TokenHash = tokenHash
	s.CreatedAt, s.ExpiresAt = s.CreatedAt.UTC(), s.ExpiresAt.UTC()
	u.ID, u.CreatedAt = s.UserID, u.CreatedAt.UTC()
	s.User = &u
	return &s, nil
}

// DeleteSession removes a session; a missing one is not an error.
func (db *DB) DeleteSession(ctx context.Context, tokenHash []byte) error {
	return db.autocommit(ctx, func(ctx context.Context, q querier) error {
		if _, err := q.Exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, tokenHash); err != nil {
			return storeErr("delete session", err)
		}
		return nil
	})
}
