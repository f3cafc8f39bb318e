package app

import (
	"context"
	"time"
)

// Username and password limits. 72 bytes is where bcrypt stops reading, so a
// longer password would silently be truncated; we reject it instead.
const (
	MinUsernameLen = 3
	MaxUsernameLen = 32
	MinPasswordLen = 8
	MaxPasswordLen = 72
)

// User is a registered account. The password hash never leaves the store
// except through FindCredentials, so it cannot end up in a response.
type User struct {
	ID        int64     `json:"id"`
	Username  string    `json:"username"`
	CreatedAt time.Time `json:"created_at"`
}

// UserService stores accounts. Usernames are unique without regard to case.
type UserService interface {
	// CreateUser stores u with the given password hash and fills in u.ID and
	// u.CreatedAt. A taken username returns ECONFLICT.
	CreateUser(ctx context.Context, u *User, passwordHash []byte) error

	// FindCredentials returns the user and password hash for a username, or
	// ENOTFOUND.
	FindCredentials(ctx context.Context, username string) (*User, []byte, error)
}

// ValidateUsername reports an EINVALID error for a username outside 3–32
// characters of [A-Za-z0-9_].
func ValidateUsername(name string) error {
	if len(name) < MinUsernameLen || len(name) > MaxUsernameLen {
		return Errorf(EINVALID, "username must be %d to %d characters", MinUsernameLen, MaxUsernameLen)
	}
	for _, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
		if !ok {
			return Errorf(EINVALID, "username may contain only letters, digits and underscores")
		}
	}
	return nil
}

// ValidatePassword reports an EINVALID error for a password outside 8–72 bytes.
func ValidatePassword(pw string) error {
	if len(pw) < MinPasswordLen || len(pw) > MaxPasswordLen {
		return Errorf(EINVALID, "password must be %d to %d bytes", MinPasswordLen, MaxPasswordLen)
	}
	return nil
}
