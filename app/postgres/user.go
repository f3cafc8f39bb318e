package postgres

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/posterctl/posterctl/app"
)

var _ app.Store = (*DB)(nil)

// CreateUser stores u; a username taken in any letter case is ECONFLICT.
func (db *DB) CreateUser(ctx context.Context, u *app.User, passwordHash []byte) error {
	if err := app.ValidateUsername(u.Username); err != nil {
		return err
	}
	created := stamp(db.Now())
	var id int64
	err := db.autocommit(ctx, func(ctx context.Context, q querier) error {
		err := q.QueryRow(ctx,
			`INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id`,
			u.Username, passwordHash, created).Scan(&id)
		if isUniqueViolation(err) {
			return app.Errorf(app.ECONFLICT, "username %q is taken", u.Username)
		} else if err != nil {
			return storeErr("create user", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	u.ID, u.CreatedAt = id, created
	return nil
}

// FindCredentials looks a user up by name, ignoring ASCII letter case as the
// unique index does.
func (db *DB) FindCredentials(ctx context.Context, username string) (*app.User, []byte, error) {
	ctx, cancel := db.callContext(ctx)
	defer cancel()
	var (
		u    app.User
		hash []byte
	)
	err := db.pool.QueryRow(ctx, `
		SELECT id, username, password_hash, created_at FROM users
		WHERE lower(username COLLATE "C") = $1`,
		asciiLower(username)).Scan(&u.ID, &u.Username, &hash, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, app.Errorf(app.ENOTFOUND, "user not found")
	} else if err != nil {
		return nil, nil, storeErr("find user", err)
	}
	u.CreatedAt = u.CreatedAt.UTC()
	return &u, hash, nil
}

// asciiLower folds only A–Z, as lower(x COLLATE "C") does in the index, so
// a non-ASCII look-alike letter never matches an ASCII username.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}
