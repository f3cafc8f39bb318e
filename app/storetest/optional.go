package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app"
)

// testSessionPost runs for stores that implement app.SessionPoster: a post
// by a live session is CreatePost by its user, and a session that is
// missing, expired or logged out through another store posts nothing.
func testSessionPost(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock()
	sub := open(t, clock.Now)
	sp, ok := sub.Store.(app.SessionPoster)
	if !ok {
		t.Skip("SKIPPED: the store does not implement app.SessionPoster")
	}
	u := mustCreateUser(t, sub.Store, "sally")
	sess := &app.Session{TokenHash: []byte("sally-token"), UserID: u.ID, ExpiresAt: clock.Now().Add(time.Hour)}
	if err := sub.Store.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}

	p, replayed, err := sp.CreateSessionPost(ctx, sess.TokenHash, clock.Now(), &app.Post{Content: " hi\n", Author: "mallory", AuthorID: 999}, "")
	if err != nil || replayed {
		t.Fatalf("post: %v replayed=%v", err, replayed)
	}
	if p.ID == 0 || p.AuthorID != u.ID || p.Author != "sally" || p.Content != "hi" || !p.CreatedAt.Equal(clock.Now()) {
		t.Fatalf("post = %+v", p)
	}
	first, _, err := sp.CreateSessionPost(ctx, sess.TokenHash, clock.Now(), &app.Post{Content: "once"}, "k")
	if err != nil {
		t.Fatal(err)
	}
	again, replayed, err := sp.CreateSessionPost(ctx, sess.TokenHash, clock.Now(), &app.Post{Content: "once"}, "k")
	if err != nil || !replayed || again.ID != first.ID || again.Author != "sally" {
		t.Fatalf("replay: %+v replayed=%v err=%v", again, replayed, err)
	}
	if _, _, err := sp.CreateSessionPost(ctx, sess.TokenHash, clock.Now(), &app.Post{Content: " "}, ""); app.ErrorCode(err) != app.EINVALID {
		t.Fatalf("empty post: err = %v, want invalid", err)
	}

	for _, tc := range []struct {
		name string
		hash []byte
		now  time.Time
	}{
		{"Missing", []byte("no-such-token"), clock.Now()},
		{"Expired", sess.TokenHash, sess.ExpiresAt},
	} {
		for _, key := range []string{"", "k2"} {
			if _, _, err := sp.CreateSessionPost(ctx, tc.hash, tc.now, &app.Post{Content: "x"}, key); app.ErrorCode(err) != app.EUNAUTHORIZED {
				t.Errorf("%s, key %q: err = %v, want unauthorized", tc.name, key, err)
			}
		}
	}
	if err := sub.Reopen(t).DeleteSession(ctx, sess.TokenHash); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "k3"} {
		if _, _, err := sp.CreateSessionPost(ctx, sess.TokenHash, clock.Now(), &app.Post{Content: "x"}, key); app.ErrorCode(err) != app.EUNAUTHORIZED {
			t.Errorf("logged out through another store, key %q: err = %v, want unauthorized", key, err)
		}
	}
	if n := sub.Count(t, "posts"); n != 2 {
		t.Fatalf("%d posts stored, want 2", n)
	}
	if n := sub.Count(t, "idempotency_keys"); n != 1 {
		t.Fatalf("%d keys stored, want 1", n)
	}
}

// testVersion runs for stores that implement app.Versioned: the version
// holds while nothing is committed and moves with a commit through this
// store or another one on the same data.
func testVersion(t *testing.T, open Opener) {
	ctx := context.Background()
	sub := open(t, NewClock().Now)
	vs, ok := sub.Store.(app.Versioned)
	if !ok {
		t.Skip("SKIPPED: the store does not implement app.Versioned")
	}
	ver := func() uint64 {
		t.Helper()
		v, err := vs.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v := ver()
	if again := ver(); again != v {
		t.Fatalf("version moved from %d to %d with no commit", v, again)
	}
	u := mustCreateUser(t, sub.Store, "victor")
	v2 := ver()
	if v2 == v {
		t.Fatal("version held across a commit through this store")
	}
	mustCreatePost(t, sub.Reopen(t), u.ID, "elsewhere")
	if v3 := ver(); v3 == v2 || v3 == v {
		t.Fatalf("version %d after a commit through another store, before %d and %d", v3, v, v2)
	}
}
