package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app"
)

func testRate(t *testing.T, open Opener) {
	ctx := context.Background()

	t.Run("Window", func(t *testing.T) {
		clock := NewClock()
		s := open(t, clock.Now).Store
		if r, err := s.PeekRate(ctx, "k"); err != nil || r != (app.Rate{}) {
			t.Fatalf("peek of an unknown key = %+v, %v", r, err)
		}
		start := clock.Now()
		for want := 1; want <= 3; want++ {
			r, err := s.HitRate(ctx, "k", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if r.Count != want || !r.Until.Equal(start.Add(time.Minute)) {
				t.Fatalf("hit %d = %+v, want count %d until %v", want, r, want, start.Add(time.Minute))
			}
			clock.Add(time.Second)
		}
		// A peek neither counts nor moves the window.
		for range 2 {
			if r, err := s.PeekRate(ctx, "k"); err != nil || r.Count != 3 || !r.Until.Equal(start.Add(time.Minute)) {
				t.Fatalf("peek = %+v, %v", r, err)
			}
		}
		// Another key has its own counter and window.
		if r, err := s.HitRate(ctx, "other", time.Hour); err != nil || r.Count != 1 || !r.Until.Equal(clock.Now().Add(time.Hour)) {
			t.Fatalf("other key = %+v, %v", r, err)
		}

		clock.Add(time.Minute - 3*time.Second)
		if r, err := s.PeekRate(ctx, "k"); err != nil || r != (app.Rate{}) {
			t.Fatalf("peek at the window's end = %+v, %v", r, err)
		}
		r, err := s.HitRate(ctx, "k", 2*time.Minute)
		if err != nil || r.Count != 1 || !r.Until.Equal(clock.Now().Add(2*time.Minute)) {
			t.Fatalf("hit after the window = %+v, %v; want a new window", r, err)
		}
	})

	t.Run("Reset", func(t *testing.T) {
		s := open(t, NewClock().Now).Store
		for range 3 {
			if _, err := s.HitRate(ctx, "k", time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.ResetRate(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if r, err := s.PeekRate(ctx, "k"); err != nil || r != (app.Rate{}) {
			t.Fatalf("peek after reset = %+v, %v", r, err)
		}
		if err := s.ResetRate(ctx, "never-hit"); err != nil {
			t.Fatalf("reset of an unknown key: %v", err)
		}
		if r, err := s.HitRate(ctx, "k", time.Minute); err != nil || r.Count != 1 {
			t.Fatalf("hit after reset = %+v, %v", r, err)
		}
	})

	t.Run("Sweep", func(t *testing.T) {
		clock := NewClock()
		sub := open(t, clock.Now)
		for i := range 5 {
			if _, err := sub.Store.HitRate(ctx, fmt.Sprint("old-", i), time.Second); err != nil {
				t.Fatal(err)
			}
		}
		clock.Add(time.Second)
		if _, err := sub.Store.HitRate(ctx, "new", time.Second); err != nil {
			t.Fatal(err)
		}
		if n := sub.Count(t, "rate_counters"); n != 1 {
			t.Fatalf("%d counters stored after the others ended, want 1", n)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		s := open(t, NewClock().Now).Store
		for _, tc := range []struct {
			key    string
			window time.Duration
		}{
			{"", time.Minute},
			{strings.Repeat("k", app.MaxRateKeyLen+1), time.Minute},
			{"k", 0},
			{"k", -time.Second},
		} {
			if _, err := s.HitRate(ctx, tc.key, tc.window); app.ErrorCode(err) != app.EINVALID {
				t.Fatalf("HitRate(%d-byte key, %v) = %v, want EINVALID", len(tc.key), tc.window, err)
			}
		}
		if _, err := s.HitRate(ctx, strings.Repeat("k", app.MaxRateKeyLen), time.Minute); err != nil {
			t.Fatalf("longest key: %v", err)
		}
	})

	// Two stores on one database are two backends: their hits add up to one
	// count, each hit seeing a different value.
	t.Run("Shared", func(t *testing.T) {
		clock := NewClock()
		sub := open(t, clock.Now)
		stores := []app.Store{sub.Store, sub.Reopen(t)}
		const perStore = 10
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			seen = map[int]bool{}
		)
		for i := range 2 * perStore {
			wg.Go(func() {
				r, err := stores[i%2].HitRate(ctx, "shared", time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if seen[r.Count] {
					t.Errorf("count %d returned twice", r.Count)
				}
				seen[r.Count] = true
			})
		}
		wg.Wait()
		for _, s := range stores {
			if r, err := s.PeekRate(ctx, "shared"); err != nil || r.Count != 2*perStore {
				t.Fatalf("peek = %+v, %v; want count %d", r, err, 2*perStore)
			}
		}
	})
}
