package app

import (
	"context"
	"time"
)

// SessionTTL is how long a login lasts.
const SessionTTL = 7 * 24 * time.Hour

// Session is a login. Only the SHA-256 of the token is stored, so a copy of
// the database does not let anyone log in.
type Session struct {
	TokenHash []byte
	UserID    int64
	CreatedAt time.Time
	ExpiresAt time.Time

	// User is filled in by FindSession.
	User *User
}

// SessionService stores logins so that every backend sharing the store
// accepts a session made on any of them.
type SessionService interface {
	// CreateSession stores s; s.TokenHash, s.UserID and s.ExpiresAt are set
	// by the caller, s.CreatedAt by the store. It also drops expired
	// sessions, so the table does not grow without bound.
	CreateSession(ctx context.Context, s *Session) error

	// FindSession returns the session with the given token hash and its user,
	// or ENOTFOUND when there is none or it expired before now.
	FindSession(ctx context.Context, tokenHash []byte, now time.Time) (*Session, error)

	// DeleteSession removes a session; deleting a missing one is not an error.
	DeleteSession(ctx context.Context, tokenHash []byte) error
}
