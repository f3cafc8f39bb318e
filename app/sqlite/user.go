package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/posterctl/posterctl/app"
)

var _ app.Store = (*DB)(nil)

// CreateUser stores u; a username taken in any letter case is ECONFLICT.
func (db *DB) CreateUser(ctx context.Context, u *app.User, passwordHash []byte) error {
	return db.inTx(ctx, func(ctx context.Context, tx *sql.Tx, _ *gen) error {
		return createUser(ctx, tx, u, passwordHash, db.Now())
	})
}

func createUser(ctx context.Context, tx *sql.Tx, u *app.User, hash []byte, now time.Time) error {
	if err := app.ValidateUsername(u.Username); err != nil {
		return err
	}
	u.CreatedAt = fromMillis(millis(now))
	res, err := tx.ExecContext(ctx,
		`INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)`,
		u.Username, hash, millis(u.CreatedAt))
	if isConstraint(err) {
		return app.Errorf(app.ECONFLICT, "username %q is taken", u.Username)
	} else if err != nil {
		return storeErr("create user", err)
	}
	if u.ID, err = res.LastInsertId(); err != nil {
		return storeErr("create user", err)
	}
	return nil
}

// FindCredentials looks a user up by name, ignoring letter case.
func (db *DB) FindCredentials(ctx context.Context, username string) (*app.User, []byte, error) {
	var (
		u       app.User
		hash    []byte
		created int64
	)
	err := db.read.QueryRowContext(ctx,
		`SELECT id, username, password_hash, created_at FROM users WHERE username = ?`,
		username).Scan(&u.ID, &u.Username, &hash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, app.Errorf(app.ENOTFOUND, "user not found")
	} else if err != nil {
		return nil, nil, storeErr("find user", err)
	}
	u.CreatedAt = fromMillis(created)
	return &u, hash, nil
}
