package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app"
)

func mustCreatePost(tb testing.TB, db interface {
	CreatePost(context.Context, *app.Post, string) (*app.Post, bool, error)
}, authorID int64, content string) *app.Post {
	tb.Helper()
	p, _, err := db.CreatePost(context.Background(), &app.Post{AuthorID: authorID, Content: content}, "")
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestDB_CreatePost(t *testing.T) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		db := MustOpenDB(t)
		clock := newClock()
		db.Now = clock.Now
		u := mustCreateUser(t, db, "dave")
		p, replayed, err := db.CreatePost(ctx, &app.Post{AuthorID: u.ID, Content: "  hello\n"}, "")
		if err != nil {
			t.Fatal(err)
		}
		if replayed || p.ID == 0 || p.Author != "dave" || p.Content != "hello" || !p.CreatedAt.Equal(clock.t) {
			t.Fatalf("post = %+v replayed = %v", p, replayed)
		}
	})

	t.Run("Limits", func(t *testing.T) {
		db := MustOpenDB(t)
		u := mustCreateUser(t, db, "erin")
		ok := strings.Repeat("é", app.MaxPostLen) // 500 characters, 1000 bytes
		if _, _, err := db.CreatePost(ctx, &app.Post{AuthorID: u.ID, Content: ok}, ""); err != nil {
			t.Fatalf("500 characters: %v", err)
		}
		for _, bad := range []string{"", " \n\t ", strings.Repeat("x", app.MaxPostLen+1)} {
			if _, _, err := db.CreatePost(ctx, &app.Post{AuthorID: u.ID, Content: bad}, ""); app.ErrorCode(err) != app.EINVALID {
				t.Errorf("%d bytes: err = %v, want invalid", len(bad), err)
			}
		}
		if n := rawQuery[int](t, db.Path, `SELECT count(*) FROM posts`); n != 1 {
			t.Fatalf("%d posts stored, want 1", n)
		}
	})

	t.Run("ErrUnknownAuthor", func(t *testing.T) {
		db := MustOpenDB(t)
		if _, _, err := db.CreatePost(ctx, &app.Post{AuthorID: 42, Content: "x"}, ""); err == nil {
			t.Fatal("expected an error")
		}
		if n := rawQuery[int](t, db.Path, `SELECT count(*) FROM posts`); n != 0 {
			t.Fatalf("%d posts stored, want 0", n)
		}
	})
}

func TestDB_CreatePost_Idempotency(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	clock := newClock()
	db.Now = clock.Now
	alice := mustCreateUser(t, db, "alice")
	bob := mustCreateUser(t, db, "bob")

	first, replayed, err := db.CreatePost(ctx, &app.Post{AuthorID: alice.ID, Content: "once"}, "key-1")
	if err != nil || replayed {
		t.Fatalf("first: %v replayed=%v", err, replayed)
	}
	clock.Add(time.Hour)
	again, replayed, err := db.CreatePost(ctx, &app.Post{AuthorID: alice.ID, Content: "different body"}, "key-1")
	if err != nil {
		t.Fatal(err)
	}
	if !replayed || again.ID != first.ID || again.Content != "once" || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("replay = %+v replayed=%v, want %+v", again, replayed, first)
	}
	// The key is per user: bob's same key is a new post.
	other, replayed, err := db.CreatePost(ctx, &app.Post{AuthorID: bob.ID, Content: "bob's"}, "key-1")
	if err != nil || replayed || other.ID == first.ID {
		t.Fatalf("other user: %+v replayed=%v err=%v", other, replayed, err)
	}
	// After 24 h the key is forgotten.
	clock.Add(app.IdempotencyTTL)
	later, replayed, err := db.CreatePost(ctx, &app.Post{AuthorID: alice.ID, Content: "next day"}, "key-1")
	if err != nil || replayed || later.ID == first.ID {
		t.Fatalf("after TTL: %+v replayed=%v err=%v", later, replayed, err)
	}
	if n := rawQuery[int](t, db.Path, `SELECT count(*) FROM posts`); n != 3 {
		t.Fatalf("%d posts stored, want 3", n)
	}
	if n := rawQuery[int](t, db.Path, `SELECT count(*) FROM idempotency_keys`); n != 2 {
		t.Fatalf("%d keys stored, want 2", n)
	}
}

func TestDB_FindPosts(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	u := mustCreateUser(t, db, "frank")
	for i := range 7 {
		mustCreatePost(t, db, u.ID, fmt.Sprint("post ", i))
	}

	t.Run("Pages", func(t *testing.T) {
		var got []string
		var before int64
		for range 10 {
			page, err := db.FindPosts(ctx, app.PostFilter{Before: before, Limit: 3})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range page {
				got = append(got, p.Content)
			}
			if len(page) < 3 {
				break
			}
			before = page[len(page)-1].ID
		}
		want := "post 6,post 5,post 4,post 3,post 2,post 1,post 0"
		if s := strings.Join(got, ","); s != want {
			t.Fatalf("got %s, want %s", s, want)
		}
	})

	t.Run("ErrInvalidLimit", func(t *testing.T) {
		for _, limit := range []int{0, -1} {
			if _, err := db.FindPosts(ctx, app.PostFilter{Limit: limit}); app.ErrorCode(err) != app.EINVALID {
				t.Errorf("limit %d: err = %v, want invalid", limit, err)
			}
		}
	})
}

// TestDB_ConcurrentWriters opens the file twice, as two backend processes
// do, and writes from many goroutines through both: with IMMEDIATE write
// transactions and a busy timeout no write may fail with "database is locked".
func TestDB_ConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "poster.db")
	dbs := []interface {
		CreatePost(context.Context, *app.Post, string) (*app.Post, bool, error)
	}{MustOpenDBAt(t, path), MustOpenDBAt(t, path)}
	u := mustCreateUser(t, MustOpenDBAt(t, path), "grace")

	const writers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				db := dbs[(w+i)%len(dbs)]
				key := ""
				if i%2 == 0 {
					key = fmt.Sprintf("w%d-%d", w, i)
				}
				if _, _, err := db.CreatePost(context.Background(), &app.Post{AuthorID: u.ID, Content: "x"}, key); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := rawQuery[int](t, path, `SELECT count(*) FROM posts`); n != writers*each {
		t.Fatalf("%d posts stored, want %d", n, writers*each)
	}
}
