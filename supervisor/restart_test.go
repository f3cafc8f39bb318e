package supervisor

import (
	"testing"
	"time"
)

func TestRestartTracker(t *testing.T) {
	t.Run("DoublesToMax", func(t *testing.T) {
		tr := newRestartTracker(DefaultRestartPolicy())
		now := time.Unix(0, 0)
		want := []time.Duration{100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000}
		for i, w := range want {
			d, fatal := tr.crashed(now, 0)
			if fatal {
				t.Fatalf("restart %d: fatal too early", i+1)
			}
			if d != w*time.Millisecond {
				t.Fatalf("restart %d: delay %v, want %v", i+1, d, w*time.Millisecond)
			}
			now = now.Add(d)
		}
		if _, fatal := tr.crashed(now, 0); !fatal {
			t.Fatal("11th crash within 60 s: want fatal")
		}
	})
	t.Run("ResetAfterUptime", func(t *testing.T) {
		tr := newRestartTracker(DefaultRestartPolicy())
		now := time.Unix(0, 0)
		for range 3 {
			tr.crashed(now, time.Second)
		}
		if d, _ := tr.crashed(now, 10*time.Second); d != 100*time.Millisecond {
			t.Fatalf("after 10 s up: delay %v, want 100ms", d)
		}
	})
	t.Run("WindowForgetsOldRestarts", func(t *testing.T) {
		p := DefaultRestartPolicy()
		p.Limit = 2
		tr := newRestartTracker(p)
		now := time.Unix(0, 0)
		tr.crashed(now, 0)
		tr.crashed(now.Add(30*time.Second), 0)
		if _, fatal := tr.crashed(now.Add(61*time.Second), 0); fatal {
			t.Fatal("restarts older than the window still counted")
		}
		if _, fatal := tr.crashed(now.Add(62*time.Second), 0); !fatal {
			t.Fatal("third restart within the window: want fatal")
		}
	})
	t.Run("Validate", func(t *testing.T) {
		if err := DefaultRestartPolicy().Validate(); err != nil {
			t.Fatal(err)
		}
		bad := DefaultRestartPolicy()
		bad.MaxBackoff = time.Millisecond
		if err := bad.Validate(); err == nil {
			t.Fatal("max below min accepted")
		}
	})
}
