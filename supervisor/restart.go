package supervisor

import (
	"fmt"
	"time"
)

// RestartPolicy decides how long to wait before restarting a crashed child
// and when to give up on it. The zero value is not useful; start from
// DefaultRestartPolicy.
type RestartPolicy struct {
	MinBackoff time.Duration // first delay after a crash
	MaxBackoff time.Duration // the doubling stops here
	ResetAfter time.Duration // uptime after which the delay starts again at MinBackoff
	Limit      int           // restarts allowed within Window before the child is fatal
	Window     time.Duration
}

// DefaultRestartPolicy is the policy of DESIGN.md: 100 ms doubling to 10 s,
// reset after 10 s up, fatal after 10 restarts within 60 s.
func DefaultRestartPolicy() RestartPolicy {
	return RestartPolicy{
		MinBackoff: 100 * time.Millisecond,
		MaxBackoff: 10 * time.Second,
		ResetAfter: 10 * time.Second,
		Limit:      10,
		Window:     60 * time.Second,
	}
}

// Validate reports the first setting that cannot work.
func (p RestartPolicy) Validate() error {
	switch {
	case p.MinBackoff <= 0:
		return fmt.Errorf("restart backoff minimum must be positive, got %v", p.MinBackoff)
	case p.MaxBackoff < p.MinBackoff:
		return fmt.Errorf("restart backoff maximum %v is below the minimum %v", p.MaxBackoff, p.MinBackoff)
	case p.ResetAfter <= 0:
		return fmt.Errorf("restart reset time must be positive, got %v", p.ResetAfter)
	case p.Limit < 0:
		return fmt.Errorf("restart limit must not be negative, got %d", p.Limit)
	case p.Window <= 0:
		return fmt.Errorf("restart window must be positive, got %v", p.Window)
	}
	return nil
}

// restartTracker applies a RestartPolicy to one child. It is not safe for
// concurrent use; the child's run loop owns it.
type restartTracker struct {
	policy RestartPolicy
	delay  time.Duration // the delay the next crash will get
	times  []time.Time   // restarts within the window
}

func newRestartTracker(p RestartPolicy) *restartTracker {
	return &restartTracker{policy: p, delay: p.MinBackoff}
}

// crashed records a crash at now of a run that lasted uptime. It returns the
// delay before the restart, or fatal when the restart limit is reached.
func (t *restartTracker) crashed(now time.Time, uptime time.Duration) (delay time.Duration, fatal bool) {
	if uptime >= t.policy.ResetAfter {
		t.delay = t.policy.MinBackoff
	}
	kept := t.times[:0]
	for _, at := range t.times {
		if now.Sub(at) < t.policy.Window {
			kept = append(kept, at)
		}
	}
	t.times = kept
	if len(t.times) >= t.policy.Limit {
		return 0, true
	}
	t.times = append(t.times, now)
	delay = t.delay
	t.delay = min(t.delay*2, t.policy.MaxBackoff)
	return delay, false
}
