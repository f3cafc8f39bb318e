package storetest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app"
)

func mustCreateUser(t *testing.T, s app.Store, name string) *app.User {
	t.Helper()
	u := &app.User{Username: name}
	if err := s.CreateUser(context.Background(), u, []byte("hash-of-"+name)); err != nil {
		t.Fatal(err)
	}
	return u
}

func mustCreatePost(t *testing.T, s app.Store, authorID int64, content string) *app.Post {
	t.Helper()
	p, _, err := s.CreatePost(context.Background(), &app.Post{AuthorID: authorID, Content: content}, "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testOpen(t *testing.T, open Opener) {
	// A second open of the same database, as a second backend does, must
	// not apply the migrations again nor lose data.
	sub := open(t, NewClock().Now)
	mustCreateUser(t, sub.Store, "alice")
	before := sub.Count(t, "schema_migrations")
	if before < 1 {
		t.Fatalf("schema_migrations has %d rows after open", before)
	}
	again := sub.Reopen(t)
	if n := sub.Count(t, "schema_migrations"); n != before {
		t.Fatalf("schema_migrations has %d rows after a second open, want %d", n, before)
	}
	if _, _, err := again.FindCredentials(context.Background(), "alice"); err != nil {
		t.Fatalf("user through the second store: %v", err)
	}
}

func testPing(t *testing.T, open Opener) {
	sub := open(t, NewClock().Now)
	if err := sub.Store.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sub.Store.Ping(ctx); err == nil {
		t.Fatal("Ping with a cancelled context succeeded")
	}
}

func testCreateUser(t *testing.T, open Opener) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		clock := NewClock()
		s := open(t, clock.Now).Store
		u := &app.User{Username: "alice_1"}
		if err := s.CreateUser(ctx, u, []byte("hash")); err != nil {
			t.Fatal(err)
		}
		if u.ID == 0 || !u.CreatedAt.Equal(clock.Now()) {
			t.Fatalf("user = %+v", u)
		}
		got, hash, err := s.FindCredentials(ctx, "ALICE_1")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != u.ID || got.Username != "alice_1" || string(hash) != "hash" || !got.CreatedAt.Equal(clock.Now()) {
			t.Fatalf("found %+v %q", got, hash)
		}
		if got.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt in %v, want UTC", got.CreatedAt.Location())
		}
	})

	t.Run("SubMillisecond", func(t *testing.T) {
		// Both stores keep milliseconds; what CreateUser reports must be
		// what a later read returns.
		clock := NewClock()
		clock.Add(1234567 * time.Nanosecond)
		s := open(t, clock.Now).Store
		u := &app.User{Username: "precise"}
		if err := s.CreateUser(ctx, u, []byte("h")); err != nil {
			t.Fatal(err)
		}
		got, _, err := s.FindCredentials(ctx, "precise")
		if err != nil {
			t.Fatal(err)
		}
		if !got.CreatedAt.Equal(u.CreatedAt) || u.CreatedAt.Nanosecond()%int(time.Millisecond) != 0 {
			t.Fatalf("created %v, read back %v", u.CreatedAt, got.CreatedAt)
		}
	})

	t.Run("ErrConflict", func(t *testing.T) {
		sub := open(t, NewClock().Now)
		mustCreateUser(t, sub.Store, "alice")
		err := sub.Store.CreateUser(ctx, &app.User{Username: "Alice"}, []byte("h"))
		if app.ErrorCode(err) != app.ECONFLICT {
			t.Fatalf("err = %v, want conflict", err)
		}
		if n := sub.Count(t, "users"); n != 1 {
			t.Fatalf("%d users stored, want 1", n)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		sub := open(t, NewClock().Now)
		for _, name := range []string{"", "ab", "with space", "ünïcode", "a-b-c", "abcdefghijklmnopqrstuvwxyz0123456"} {
			err := sub.Store.CreateUser(ctx, &app.User{Username: name}, []byte("h"))
			if app.ErrorCode(err) != app.EINVALID {
				t.Errorf("%q: err = %v, want invalid", name, err)
			}
		}
		if n := sub.Count(t, "users"); n != 0 {
			t.Fatalf("%d users stored, want 0", n)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := open(t, NewClock().Now).Store
		mustCreateUser(t, s, "karl")
		// Only ASCII letters fold: the Kelvin sign (which Unicode lowers to
		// "k") and other non-ASCII spellings are different names.
		for _, name := range []string{"nobody", "\u212Aarl", "ｋarl", "karl ", ""} {
			if _, _, err := s.FindCredentials(ctx, name); app.ErrorCode(err) != app.ENOTFOUND {
				t.Errorf("%q: err = %v, want not found", name, err)
			}
		}
	})
}

func testSession(t *testing.T, open Opener) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		clock := NewClock()
		s := open(t, clock.Now).Store
		u := mustCreateUser(t, s, "bob")
		sess := &app.Session{TokenHash: []byte("token-hash"), UserID: u.ID, ExpiresAt: clock.Now().Add(time.Hour)}
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		if !sess.CreatedAt.Equal(clock.Now()) {
			t.Fatalf("CreatedAt = %v, want %v", sess.CreatedAt, clock.Now())
		}
		got, err := s.FindSession(ctx, []byte("token-hash"), clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got.UserID != u.ID || got.User.Username != "bob" || got.User.ID != u.ID ||
			!got.ExpiresAt.Equal(sess.ExpiresAt) || !got.CreatedAt.Equal(clock.Now()) ||
			!bytes.Equal(got.TokenHash, sess.TokenHash) {
			t.Fatalf("session = %+v user = %+v", got, got.User)
		}
		if err := s.DeleteSession(ctx, sess.TokenHash); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FindSession(ctx, sess.TokenHash, clock.Now()); app.ErrorCode(err) != app.ENOTFOUND {
			t.Fatalf("after delete: err = %v, want not found", err)
		}
		if err := s.DeleteSession(ctx, sess.TokenHash); err != nil {
			t.Fatalf("deleting a missing session: %v", err)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := open(t, NewClock().Now).Store
		for _, h := range [][]byte{nil, []byte("unknown")} {
			if _, err := s.FindSession(ctx, h, time.Now()); app.ErrorCode(err) != app.ENOTFOUND {
				t.Errorf("%q: err = %v, want not found", h, err)
			}
		}
	})

	t.Run("Expired", func(t *testing.T) {
		clock := NewClock()
		sub := open(t, clock.Now)
		s := sub.Store
		u := mustCreateUser(t, s, "carol")
		old := &app.Session{TokenHash: []byte("old"), UserID: u.ID, ExpiresAt: clock.Now().Add(time.Hour)}
		if err := s.CreateSession(ctx, old); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FindSession(ctx, old.TokenHash, clock.Now().Add(time.Hour-time.Millisecond)); err != nil {
			t.Fatalf("just before expiry: %v", err)
		}
		if _, err := s.FindSession(ctx, old.TokenHash, clock.Now().Add(time.Hour)); app.ErrorCode(err) != app.ENOTFOUND {
			t.Fatalf("at expiry: err = %v, want not found", err)
		}
		// A new login sweeps expired sessions out of the table.
		clock.Add(2 * time.Hour)
		if err := s.CreateSession(ctx, &app.Session{TokenHash: []byte("new"), UserID: u.ID, ExpiresAt: clock.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if n := sub.Count(t, "sessions"); n != 1 {
			t.Fatalf("%d sessions stored, want 1", n)
		}
	})
}

func testCreatePost(t *testing.T, open Opener) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		clock := NewClock()
		s := open(t, clock.Now).Store
		u := mustCreateUser(t, s, "dave")
		p, replayed, err := s.CreatePost(ctx, &app.Post{AuthorID: u.ID, Content: "  hello\n"}, "")
		if err != nil {
			t.Fatal(err)
		}
		if replayed || p.ID == 0 || p.AuthorID != u.ID || p.Author != "dave" || p.Content != "hello" || !p.CreatedAt.Equal(clock.Now()) {
			t.Fatalf("post = %+v replayed = %v", p, replayed)
		}
	})

	t.Run("Limits", func(t *testing.T) {
		sub := open(t, NewClock().Now)
		u := mustCreateUser(t, sub.Store, "erin")
		ok := strings.Repeat("é", app.MaxPostLen) // 500 characters, 1000 bytes
		if _, _, err := sub.Store.CreatePost(ctx, &app.Post{AuthorID: u.ID, Content: ok}, ""); err != nil {
			t.Fatalf("500 characters: %v", err)
		}
		for _, bad := range []string{"", " \n\t ", strings.Repeat("x", app.MaxPostLen+1)} {
			if _, _, err := sub.Store.CreatePost(ctx, &app.Post{AuthorID: u.ID, Content: bad}, ""); app.ErrorCode(err) != app.EINVALID {
				t.Errorf("%d bytes: err = %v, want invalid", len(bad), err)
			}
		}
		if n := sub.Count(t, "posts"); n != 1 {
			t.Fatalf("%d posts stored, want 1", n)
		}
	})

	t.Run("ErrUnknownAuthor", func(t *testing.T) {
		sub := open(t, NewClock().Now)
		for _, key := range []string{"", "key"} {
			if _, _, err := sub.Store.CreatePost(ctx, &app.Post{AuthorID: 42, Content: "x"}, key); app.ErrorCode(err) != app.ENOTFOUND {
				t.Errorf("key %q: err = %v, want not found", key, err)
			}
		}
		for _, table := range []string{"posts", "idempotency_keys"} {
			if n := sub.Count(t, table); n != 0 {
				t.Errorf("%d rows in %s, want 0", n, table)
			}
		}
	})
}

func testIdempotency(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock()
	sub := open(t, clock.Now)
	s := sub.Store
	alice := mustCreateUser(t, s, "alice")
	bob := mustCreateUser(t, s, "bob")

	first, replayed, err := s.CreatePost(ctx, &app.Post{AuthorID: alice.ID, Content: "once"}, "key-1")
	if err != nil || replayed {
		t.Fatalf("first: %v replayed=%v", err, replayed)
	}
	if _, replayed, err := s.CreatePost(ctx, &app.Post{AuthorID: alice.ID, Content: "other"}, "never-again"); err != nil || replayed {
		t.Fatalf("second key: %v replayed=%v", err, replayed)
	}
	clock.Add(time.Hour)
	again, replayed, err := s.CreatePost(ctx, &app.Post{AuthorID: alice.ID, Content: "different body"}, "key-1")
	if err != nil {
		t.Fatal(err)
	}
	if !replayed || again.ID != first.ID || again.Author != "alice" || again.Content != "once" || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("replay = %+v replayed=%v, want %+v", again, replayed, first)
	}
	// A replay through another backend is caught too.
	other := sub.Reopen(t)
	again, replayed, err = other.CreatePost(ctx, &app.Post{AuthorID: alice.ID, Content: "once"}, "key-1")
	if err != nil || !replayed || again.ID != first.ID {
		t.Fatalf("replay through a second store: %+v replayed=%v err=%v", again, replayed, err)
	}
	// The key is per user: bob's same key is a new post.
	bobs, replayed, err := s.CreatePost(ctx, &app.Post{AuthorID: bob.ID, Content: "bob's"}, "key-1")
	if err != nil || replayed || bobs.ID == first.ID {
		t.Fatalf("other user: %+v replayed=%v err=%v", bobs, replayed, err)
	}
	// A replay answers whatever the body; a bad post with a new key is
	// rejected and does not claim the key.
	again, replayed, err = s.CreatePost(ctx, &app.Post{AuthorID: alice.ID, Content: " "}, "key-1")
	if err != nil || !replayed || again.ID != first.ID {
		t.Fatalf("replay with an empty body: %+v replayed=%v err=%v", again, replayed, err)
	}
	if _, _, err := s.CreatePost(ctx, &app.Post{AuthorID: alice.ID, Content: " "}, "key-2"); app.ErrorCode(err) != app.EINVALID {
		t.Fatalf("empty post: err = %v, want invalid", err)
	}
	if n := sub.Count(t, "idempotency_keys"); n != 3 {
		t.Fatalf("%d keys stored after a rejected post, want 3", n)
	}
	// After 24 h the key is forgotten.
	clock.Add(app.IdempotencyTTL)
	later, replayed, err := s.CreatePost(ctx, &app.Post{AuthorID: alice.ID, Content: "next day"}, "key-1")
	if err != nil || replayed || later.ID == first.ID || later.Content != "next day" {
		t.Fatalf("after TTL: %+v replayed=%v err=%v", later, replayed, err)
	}
	again, replayed, err = s.CreatePost(ctx, &app.Post{AuthorID: alice.ID, Content: "next day"}, "key-1")
	if err != nil || !replayed || again.ID != later.ID {
		t.Fatalf("replay of the reused key: %+v replayed=%v err=%v", again, replayed, err)
	}
	if n := sub.Count(t, "posts"); n != 4 {
		t.Fatalf("%d posts stored, want 4", n)
	}
	// Using a key sweeps the user's expired ones ("never-again").
	if n := sub.Count(t, "idempotency_keys"); n != 2 {
		t.Fatalf("%d keys stored, want 2", n)
	}
}

func testFindPosts(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, NewClock().Now).Store

	t.Run("Empty", func(t *testing.T) {
		page, err := s.FindPosts(ctx, app.PostFilter{Limit: 10})
		if err != nil || len(page) != 0 {
			t.Fatalf("page = %v, err = %v", page, err)
		}
	})

	u := mustCreateUser(t, s, "frank")
	for i := range 7 {
		mustCreatePost(t, s, u.ID, fmt.Sprint("post ", i))
	}

	t.Run("Pages", func(t *testing.T) {
		var got []string
		var before int64
		for range 10 {
			page, err := s.FindPosts(ctx, app.PostFilter{Before: before, Limit: 3})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range page {
				if p.Author != "frank" || p.AuthorID != u.ID {
					t.Fatalf("post %+v", p)
				}
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

	t.Run("BeforeOldest", func(t *testing.T) {
		all, err := s.FindPosts(ctx, app.PostFilter{Limit: 100})
		if err != nil || len(all) != 7 {
			t.Fatalf("%d posts, err %v", len(all), err)
		}
		page, err := s.FindPosts(ctx, app.PostFilter{Before: all[len(all)-1].ID, Limit: 100})
		if err != nil || len(page) != 0 {
			t.Fatalf("page before the oldest = %v, err = %v", page, err)
		}
	})

	t.Run("ErrInvalidLimit", func(t *testing.T) {
		for _, limit := range []int{0, -1} {
			if _, err := s.FindPosts(ctx, app.PostFilter{Limit: limit}); app.ErrorCode(err) != app.EINVALID {
				t.Errorf("limit %d: err = %v, want invalid", limit, err)
			}
		}
	})
}

// testShared checks that two stores on one database are one store, as two
// backends on it must be.
func testShared(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock()
	sub := open(t, clock.Now)
	a, b := sub.Store, sub.Reopen(t)
	u := mustCreateUser(t, a, "heidi")
	if err := b.CreateUser(ctx, &app.User{Username: "HEIDI"}, []byte("h")); app.ErrorCode(err) != app.ECONFLICT {
		t.Fatalf("same name through b: err = %v, want conflict", err)
	}
	sess := &app.Session{TokenHash: []byte("t"), UserID: u.ID, ExpiresAt: clock.Now().Add(time.Hour)}
	if err := a.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if got, err := b.FindSession(ctx, sess.TokenHash, clock.Now()); err != nil || got.User.Username != "heidi" {
		t.Fatalf("session through b: %+v %v", got, err)
	}
	p := mustCreatePost(t, b, u.ID, "through b")
	page, err := a.FindPosts(ctx, app.PostFilter{Limit: 10})
	if err != nil || len(page) != 1 || page[0].ID != p.ID {
		t.Fatalf("posts through a: %v %v", page, err)
	}
	if err := b.DeleteSession(ctx, sess.TokenHash); err != nil {
		t.Fatal(err)
	}
	if _, err := a.FindSession(ctx, sess.TokenHash, clock.Now()); app.ErrorCode(err) != app.ENOTFOUND {
		t.Fatalf("after logout through b: err = %v, want not found", err)
	}
}

// testConcurrentWriters writes from many goroutines through two stores on
// one database, as two busy backends do: no write may fail.
func testConcurrentWriters(t *testing.T, open Opener) {
	sub := open(t, NewClock().Now)
	stores := []app.Store{sub.Store, sub.Reopen(t)}
	u := mustCreateUser(t, sub.Store, "grace")

	const writers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				s := stores[(w+i)%len(stores)]
				key := ""
				if i%2 == 0 {
					key = fmt.Sprintf("w%d-%d", w, i)
				}
				if _, _, err := s.CreatePost(context.Background(), &app.Post{AuthorID: u.ID, Content: "x"}, key); err != nil {
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
	if n := sub.Count(t, "posts"); n != writers*each {
		t.Fatalf("%d posts stored, want %d", n, writers*each)
	}
	if n := sub.Count(t, "idempotency_keys"); n != writers*each/2 {
		t.Fatalf("%d keys stored, want %d", n, writers*each/2)
	}
}

// testConcurrentSameKey sends one Idempotency-Key from many goroutines at
// once through two stores, as a client retrying through the load balancer
// may: exactly one post is created and every call returns it.
func testConcurrentSameKey(t *testing.T, open Opener) {
	sub := open(t, NewClock().Now)
	stores := []app.Store{sub.Store, sub.Reopen(t)}
	u := mustCreateUser(t, sub.Store, "ivan")

	const rounds, callers = 5, 8
	for round := range rounds {
		key := fmt.Sprint("same-key-", round)
		type result struct {
			p        *app.Post
			replayed bool
			err      error
		}
		results := make(chan result, callers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for c := range callers {
			wg.Go(func() {
				<-start
				p, replayed, err := stores[c%len(stores)].CreatePost(context.Background(), &app.Post{AuthorID: u.ID, Content: fmt.Sprint("caller ", c)}, key)
				results <- result{p, replayed, err}
			})
		}
		close(start)
		wg.Wait()
		close(results)
		var created int
		ids := map[int64]bool{}
		for r := range results {
			if r.err != nil {
				t.Fatalf("round %d: %v", round, r.err)
			}
			ids[r.p.ID] = true
			if !r.replayed {
				created++
			}
		}
		if created != 1 || len(ids) != 1 {
			t.Fatalf("round %d: %d calls created a post, %d distinct ids returned; want 1 and 1", round, created, len(ids))
		}
	}
	if n := sub.Count(t, "posts"); n != rounds {
		t.Fatalf("%d posts stored, want %d", n, rounds)
	}
}
