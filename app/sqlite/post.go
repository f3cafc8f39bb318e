package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/posterctl/posterctl/app"
)

// CreatePost stores p, or with an idempotency key already used by the same
// author within app.IdempotencyTTL returns the first post and creates nothing.
func (db *DB) CreatePost(ctx context.Context, p *app.Post, idempotencyKey string) (*app.Post, bool, error) {
	var (
		first    *app.Post
		replayed bool
	)
	p.Author = "" // the caller's name for the author is not taken on trust
	err := db.inRawTx(ctx, func(t *wtx) (err error) {
		first, replayed, err = createPostTx(t, p, idempotencyKey, db.Now())
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return first, replayed, nil
}

// createPostTx is CreatePost inside t. p.Author, when set, is taken as the
// author's name rather than read again.
func createPostTx(t *wtx, p *app.Post, idempotencyKey string, now time.Time) (*app.Post, bool, error) {
	if idempotencyKey != "" {
		first, err := findIdempotent(t, p.AuthorID, idempotencyKey, now)
		if err != nil {
			return nil, false, err
		} else if first != nil {
			return first, true, nil
		}
	}
	if err := createPost(t, p, now); err != nil {
		return nil, false, err
	}
	if idempotencyKey != "" {
		if err := saveIdempotent(t, p.AuthorID, idempotencyKey, p.ID, now); err != nil {
			return nil, false, err
		}
	}
	return p, false, nil
}

func createPost(t *wtx, p *app.Post, now time.Time) error {
	content, err := app.NormalizePostContent(p.Content)
	if err != nil {
		return err
	}
	p.Content = content
	p.CreatedAt = fromMillis(millis(now))
	res, err := t.exec(rawInsertPost, p.AuthorID, p.Content, millis(p.CreatedAt))
	if isForeignKey(err) {
		return app.Errorf(app.ENOTFOUND, "author not found")
	} else if err != nil {
		return storeErr("create post", err)
	}
	if p.ID, err = res.LastInsertId(); err != nil {
		return storeErr("create post", err)
	}
	if p.Author != "" {
		return nil
	}
	row, err := t.queryRow(rawUsername, 1, p.AuthorID)
	if errors.Is(err, sql.ErrNoRows) {
		return app.Errorf(app.ENOTFOUND, "author not found")
	} else if err != nil {
		return storeErr("create post", err)
	}
	if p.Author, err = asString(row[0]); err != nil {
		return storeErr("create post", err)
	}
	return nil
}

// FindPosts returns one page of posts, newest first.
func (db *DB) FindPosts(ctx context.Context, f app.PostFilter) ([]*app.Post, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	g := db.cur()
	var (
		rows *sql.Rows
		err  error
	)
	if f.Before > 0 {
		rows, err = g.st.findPostsBefore.QueryContext(ctx, f.Before, f.Limit)
	} else {
		rows, err = g.st.findPosts.QueryContext(ctx, f.Limit)
	}
	if err != nil {
		return nil, storeErr("find posts", err)
	}
	defer rows.Close()
	posts := make([]*app.Post, 0, f.Limit)
	// One allocation for every row's Post rather than one each.
	backing := make([]app.Post, 0, f.Limit)
	var created int64
	for rows.Next() {
		backing = append(backing, app.Post{})
		p := &backing[len(backing)-1]
		if err := rows.Scan(&p.ID, &p.AuthorID, &p.Author, &p.Content, &created); err != nil {
			return nil, storeErr("find posts", err)
		}
		p.CreatedAt = fromMillis(created)
		posts = append(posts, p)
	}
	if err := rows.Err(); err != nil {
		return nil, storeErr("find posts", err)
	}
	return posts, nil
}
