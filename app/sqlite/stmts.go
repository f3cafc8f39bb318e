package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// SQL of the statements on every request's path. Preparing them once per
// connection spares SQLite's parser and planner, which cost more than
// running these queries.
const (
	sqlFindPosts = `SELECT p.id, p.user_id, u.username, p.content, p.created_at
		FROM posts p JOIN users u ON u.id = p.user_id
		ORDER BY p.id DESC LIMIT ?`
	sqlFindPostsBefore = `SELECT p.id, p.user_id, u.username, p.content, p.created_at
		FROM posts p JOIN users u ON u.id = p.user_id
		WHERE p.id < ? ORDER BY p.id DESC LIMIT ?`
	sqlFindSession = `SELECT s.user_id, s.created_at, s.expires_at, u.username, u.created_at
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = ? AND s.expires_at > ?`
	// The post path's statements run on the write connection (rawtx.go).
	sqlSessionUser = `SELECT s.user_id, u.username
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = ? AND s.expires_at > ?`
	sqlInsertPost = `INSERT INTO posts (user_id, content, created_at) VALUES (?, ?, ?)`
	sqlUsername   = `SELECT username FROM users WHERE id = ?`
	sqlExpireKeys = `DELETE FROM idempotency_keys WHERE user_id = ? AND created_at <= ?`
	sqlFindKey    = `SELECT p.id, p.user_id, u.username, p.content, p.created_at
		FROM idempotency_keys k
		JOIN posts p ON p.id = k.post_id
		JOIN users u ON u.id = p.user_id
		WHERE k.user_id = ? AND k.key = ?`
	sqlSaveKey     = `INSERT INTO idempotency_keys (user_id, key, post_id, created_at) VALUES (?, ?, ?, ?)`
	sqlDataVersion = `PRAGMA data_version`
)

// stmts are a gen's prepared statements of the read pool. database/sql
// prepares a pool's statement on each connection the first time it runs
// there and keeps it.
type stmts struct {
	findPosts, findPostsBefore, findSession *sql.Stmt
}

// prepare prepares every statement of g. The caller closes g on error.
func (st *stmts) prepare(ctx context.Context, g *gen) error {
	for _, p := range []struct {
		dst  **sql.Stmt
		pool *sql.DB
		sql  string
	}{
		{&st.findPosts, g.read, sqlFindPosts},
		{&st.findPostsBefore, g.read, sqlFindPostsBefore},
		{&st.findSession, g.read, sqlFindSession},
	} {
		s, err := p.pool.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.sql, err)
		}
		*p.dst = s
	}
	return nil
}

// close closes the statements that were prepared.
func (st *stmts) close() error {
	var errs []error
	for _, s := range []*sql.Stmt{st.findPosts, st.findPostsBefore, st.findSession} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}
