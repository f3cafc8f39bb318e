package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/posterctl/posterctl/app"
)

// CreateSession stores s and drops sessions that have expired.
func (db *DB) CreateSession(ctx context.Context, s *app.Session) error {
	return db.inTx(ctx, func(ctx context.Context, tx *sql.Tx, _ *gen) error {
		return createSession(ctx, tx, s, db.Now())
	})
}

func createSession(ctx context.Context, tx *sql.Tx, s *app.Session, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, millis(now)); err != nil {
		return storeErr("expire sessions", err)
	}
	s.CreatedAt = fromMillis(millis(now))
	_, err := tx.ExecContext(ctx,
		`INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)`,
		s.TokenHash, s.UserID, millis(s.CreatedAt), millis(s.ExpiresAt))
	if err != nil {
		return storeErr("create session", err)
	}
	return nil
}

// FindSession returns a live session and its user.
func (db *DB) FindSession(ctx context.Context, tokenHash []byte, now time.Time) (*app.Session, error) {
	var (
		s                          app.Session
		u                          app.User
		created, expires, uCreated int64
	)
	err := db.cur().st.findSession.QueryRowContext(ctx, tokenHash, millis(now)).Scan(&s.UserID, &created, &expires, &u.Username, &uCreated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, app.Errorf(app.ENOTFOUND, "session not found")
	} else if err != nil {
		return nil, storeErr("find session", err)
	}
	s.TokenHash = tokenHash
	s.CreatedAt, s.ExpiresAt = fromMillis(created), fromMillis(expires)
	u.ID, u.CreatedAt = s.UserID, fromMillis(uCreated)
	s.User = &u
	return &s, nil
}

// DeleteSession removes a session; a missing one is not an error.
func (db *DB) DeleteSession(ctx context.Context, tokenHash []byte) error {
	return db.inTx(ctx, func(ctx context.Context, tx *sql.Tx, _ *gen) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE token_hash = ?`, tokenHash); err != nil {
			return storeErr("delete session", err)
		}
		return nil
	})
}
