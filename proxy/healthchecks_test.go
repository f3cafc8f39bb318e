package proxy

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeProbe answers from a switch the test flips, and counts calls.
type fakeProbe struct {
	mu    sync.Mutex
	fail  bool
	calls int
}

func (f *fakeProbe) probe(ctx context.Context, b *Backend) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail {
		return errors.New("refused")
	}
	return nil
}

func (f *fakeProbe) set(fail bool) {
	f.mu.Lock()
	f.fail = fail
	f.mu.Unlock()
}

func (f *fakeProbe) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func TestHealthChecker(t *testing.T) {
	cfg := &Config{HealthInterval: 40 * time.Millisecond, HealthDownInterval: 10 * time.Millisecond}
	cfg.SetDefaults()
	pool := testPool(1)
	fp := &fakeProbe{fail: true}
	changes := make(chan Transition, 10)
	hc := NewHealthChecker(cfg, pool, fp.probe, func(b *Backend, tr Transition, err error, via string) {
		if via != "probe" {
			t.Errorf("via %q", via)
		}
		changes <- tr
	})
	hc.Start()
	defer hc.Close()

	wait := func(want Transition) {
		t.Helper()
		select {
		case got := <-changes:
			if got != want {
				t.Fatalf("got %v, want %v", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %v transition within 5 s", want)
		}
	}
	wait(WentDown)
	if pool[0].Available() {
		t.Fatal("available after going down")
	}
	fp.set(false)
	wait(WentUp)
	select {
	case tr := <-changes:
		t.Fatalf("extra transition %v", tr)
	default:
	}
	hc.Close()
	n := fp.count()
	hc.Close() // twice is fine
	if fp.count() != n {
		t.Fatal("probes ran after Close")
	}
}

func TestHealthCheckerProbesDownBackendsFaster(t *testing.T) {
	// With a 1 h interval, only the down interval can produce a second probe.
	cfg := &Config{HealthInterval: time.Hour, HealthDownInterval: 5 * time.Millisecond}
	cfg.SetDefaults()
	pool := testPool(2)
	pool[0].Eject(errors.New("refused"))
	var mu sync.Mutex
	calls := map[*Backend]int{}
	probe := func(ctx context.Context, b *Backend) error {
		mu.Lock()
		calls[b]++
		mu.Unlock()
		if b != pool[0] {
			return nil // a failure, even one, is confirmed at the short interval
		}
		return errors.New("still refused")
	}
	hc := NewHealthChecker(cfg, pool, probe, nil)
	hc.Start()
	defer hc.Close()
	deadline := time.After(5 * time.Second)
	for {
		mu.Lock()
		down, up := calls[pool[0]], calls[pool[1]]
		mu.Unlock()
		if down >= 5 {
			if up != 1 {
				t.Fatalf("healthy backend probed %d times in its first hour, want 1", up)
			}
			return
		}
		select {
		case <-deadline:
			t.Fatalf("down backend probed %d times in 5 s", down)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
