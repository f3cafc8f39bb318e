package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/posterctl/posterctl/app"
)

// CreatePost stores p, or with an idempotency key already used by the same
// author within app.IdempotencyTTL returns the first post and creates nothing.
func (db *DB) CreatePost(ctx context.Context, p *app.Post, idempotencyKey string) (*app.Post, bool, error) {
	// A replay answers whatever the body, like the first response did; so
	// invalid content fails only a call that would create.
	content, invalid := app.NormalizePostContent(p.Content)
	if invalid != nil && idempotencyKey == "" {
		return nil, false, invalid
	}
	created := app.Post{AuthorID: p.AuthorID, Content: content, CreatedAt: stamp(db.Now())}
	if idempotencyKey == "" {
		err := db.autocommit(ctx, func(ctx context.Context, q querier) error { return createPost(ctx, q, &created, "") })
		if err != nil {
			return nil, false, err
		}
		*p = created
		return p, false, nil
	}
	var first *app.Post
	err := db.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		first = nil
		claimed, err := claimKey(ctx, tx, p.AuthorID, idempotencyKey, created.CreatedAt)
		if err != nil {
			return err
		}
		if !claimed {
			first, err = findKeyPost(ctx, tx, p.AuthorID, idempotencyKey)
			return err
		}
		if invalid != nil {
			return invalid
		}
		return createPost(ctx, tx, &created, idempotencyKey)
	})
	if err != nil {
		return nil, false, err
	}
	if first != nil {
		return first, true, nil
	}
	*p = created
	return p, false, nil
}

// createPost inserts p and fills in its ID and Author in one round trip;
// with a key (claimed by this transaction) it also points the key at p.
func createPost(ctx context.Context, q querier, p *app.Post, key string) error {
	err := q.QueryRow(ctx, `
		WITH p AS (
			INSERT INTO posts (user_id, content, created_at) VALUES ($1, $2, $3)
			RETURNING id, user_id),
		k AS (
			UPDATE idempotency_keys SET post_id = (SELECT id FROM p)
			WHERE $4 <> '' AND user_id = $1 AND key = $4)
		SELECT p.id, u.username FROM p JOIN users u ON u.id = p.user_id`,
		p.AuthorID, p.Content, p.CreatedAt, key).Scan(&p.ID, &p.Author)
	if isForeignKeyViolation(err) {
		return app.Errorf(app.ENOTFOUND, "author not found")
	} else if err != nil {
		return storeErr("create post", err)
	}
	return nil
}

// FindPosts returns one page of posts, newest first.
func (db *DB) FindPosts(ctx context.Context, f app.PostFilter) ([]*app.Post, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := db.callContext(ctx)
	defer cancel()
	q := `SELECT p.id, p.user_id, u.username, p.content, p.created_at
		FROM posts p JOIN users u ON u.id = p.user_id`
	args := []any{f.Limit}
	if f.Before > 0 {
		q += ` WHERE p.id < $2`
		args = append(args, f.Before)
	}
	q += ` ORDER BY p.id DESC LIMIT $1`

	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, storeErr("find posts", err)
	}
	posts := make([]*app.Post, 0, min(f.Limit, app.MaxPostLimit+1))
	for rows.Next() {
		var p app.Post
		if err := rows.Scan(&p.ID, &p.AuthorID, &p.Author, &p.Content, &p.CreatedAt); err != nil {
			rows.Close()
			return nil, storeErr("find posts", err)
		}
		p.CreatedAt = p.CreatedAt.UTC()
		posts = append(posts, &p)
	}
	if err := rows.Err(); err != nil {
		return nil, storeErr("find posts", err)
	}
	return posts, nil
}

// findKeyPost returns the post a claimed key points at.
func findKeyPost(ctx context.Context, tx pgx.Tx, userID int64, key string) (*app.Post, error) {
	var p app.Post
	err := tx.QueryRow(ctx, `
		SELECT p.id, p.user_id, u.username, p.content, p.created_at
		FROM idempotency_keys k
		JOIN posts p ON p.id = k.post_id
		JOIN users u ON u.id = p.user_id
		WHERE k.user_id = $1 AND k.key = $2`, userID, key).
		Scan(&p.ID, &p.AuthorID, &p.Author, &p.Content, &p.CreatedAt)
	if err != nil {
		// The key row exists (claimKey saw it) and its post is deleted
		// with it, so no row here is a broken invariant, not a user error.
		return nil, storeErr("find idempotency key", fmt.Errorf("key %q: %w", key, err))
	}
	p.CreatedAt = p.CreatedAt.UTC()
	return &p, nil
}
