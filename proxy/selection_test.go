package proxy

import (
	"errors"
	"fmt"
	"testing"

	"github.com/posterctl/posterctl/lbapi"
)

func testPool(n int) []*Backend {
	pool := make([]*Backend, n)
	for i := range pool {
		pool[i] = NewBackend(fmt.Sprintf("127.0.0.1:%d", 3001+i), i)
	}
	return pool
}

func TestRoundRobin(t *testing.T) {
	t.Run("EvenWithinAny2N", func(t *testing.T) {
		for _, n := range []int{1, 2, 3, 5} {
			pool := testPool(n)
			rr := &RoundRobin{}
			var picks []*Backend
			for range 10 * n {
				picks = append(picks, rr.Select(pool, 0))
			}
			// Every window of 2N consecutive picks holds each backend twice.
			for start := 0; start+2*n <= len(picks); start++ {
				count := map[*Backend]int{}
				for _, b := range picks[start : start+2*n] {
					count[b]++
				}
				for _, b := range pool {
					if count[b] != 2 {
						t.Fatalf("n=%d window at %d: %s picked %d times, want 2", n, start, b.addr, count[b])
					}
				}
			}
		}
	})
	t.Run("SkipsUnavailable", func(t *testing.T) {
		pool := testPool(3)
		pool[1].Eject(errors.New("refused"))
		rr := &RoundRobin{}
		for range 30 {
			if b := rr.Select(pool, 0); b == pool[1] {
				t.Fatal("selected an ejected backend")
			}
		}
	})
	t.Run("SkipsTried", func(t *testing.T) {
		pool := testPool(3)
		rr := &RoundRobin{}
		var tried Tried
		seen := map[*Backend]bool{}
		for range 3 {
			b := rr.Select(pool, tried)
			if b == nil || seen[b] {
				t.Fatalf("got %v after %v: want a backend not tried yet", b, seen)
			}
			seen[b] = true
			tried = tried.With(b)
		}
		if b := rr.Select(pool, tried); b != nil {
			t.Fatalf("got %s with every backend tried, want nil", b.addr)
		}
	})
	t.Run("NoneAvailable", func(t *testing.T) {
		pool := testPool(2)
		for _, b := range pool {
			b.Eject(errors.New("refused"))
		}
		if b := (&RoundRobin{}).Select(pool, 0); b != nil {
			t.Fatalf("got %s, want nil", b.addr)
		}
		if b := (&RoundRobin{}).Select(nil, 0); b != nil {
			t.Fatal("empty pool gave a backend")
		}
	})
}

func TestTriedHighIndex(t *testing.T) {
	b := NewBackend("127.0.0.1:1", lbapi.MaxBackends-1)
	var tr Tried
	if tr.Has(b) {
		t.Fatal("empty set has a backend")
	}
	if !tr.With(b).Has(b) {
		t.Fatal("backend 63 lost from the set")
	}
}
