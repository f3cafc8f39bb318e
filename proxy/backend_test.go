package proxy

import (
	"errors"
	"testing"
	"time"
)

func TestParseBackend(t *testing.T) {
	ok := map[string]string{
		"127.0.0.1:3001":         "127.0.0.1:3001",
		"http://127.0.0.1:3002":  "127.0.0.1:3002",
		"http://127.0.0.1:3002/": "127.0.0.1:3002",
		"localhost:80":           "localhost:80",
		" [::1]:3001 ":           "[::1]:3001",
	}
	for in, want := range ok {
		got, err := ParseBackend(in)
		if err != nil || got != want {
			t.Errorf("ParseBackend(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "3001", "127.0.0.1", ":3001", "127.0.0.1:0", "127.0.0.1:70000",
		"127.0.0.1:http", "https://127.0.0.1:3001", "http://127.0.0.1:3001/api", "http://127.0.0.1:3001?x=1", "http://u@127.0.0.1:3001"} {
		if got, err := ParseBackend(in); err == nil {
			t.Errorf("ParseBackend(%q) = %q, want an error", in, got)
		}
	}
}

func TestHealthStateMachine(t *testing.T) {
	fail := errors.New("refused")
	now := time.Now()
	probe := func(b *Backend, err error) Transition { return b.RecordProbe(err, now, 2, 2) }

	t.Run("StartsAvailable", func(t *testing.T) {
		b := NewBackend("a:1", 0)
		if !b.Available() {
			t.Fatal("new backend not available before any probe")
		}
		if st := b.Status(); st.LastCheck != nil || !st.Healthy {
			t.Fatalf("status before any probe: %+v", st)
		}
	})
	t.Run("OneFailureDoesNotEject", func(t *testing.T) {
		b := NewBackend("a:1", 0)
		steps := []struct {
			err  error
			want Transition
			up   bool
		}{
			{fail, NoChange, true},
			{nil, NoChange, true}, // a success resets the failure count
			{fail, NoChange, true},
			{fail, WentDown, false},
			{fail, NoChange, false},
			{nil, NoChange, false},
			{fail, NoChange, false}, // a failure resets the success count
			{nil, NoChange, false},
			{nil, WentUp, true},
			{nil, NoChange, true},
		}
		for i, s := range steps {
			if got := probe(b, s.err); got != s.want || b.Available() != s.up {
				t.Fatalf("step %d (err=%v): transition %v available %v; want %v %v", i, s.err, got, b.Available(), s.want, s.up)
			}
		}
	})
	t.Run("EjectAtOnceAndComeBackOnTwoProbes", func(t *testing.T) {
		b := NewBackend("a:1", 0)
		probe(b, fail) // one failed probe pending must not count towards coming back
		if got := b.Eject(fail); got != WentDown || b.Available() {
			t.Fatalf("Eject: %v, available %v", got, b.Available())
		}
		if got := b.Eject(fail); got != NoChange {
			t.Fatalf("second Eject: %v, want no change (one log line per state change)", got)
		}
		if probe(b, nil) != NoChange || b.Available() {
			t.Fatal("one success brought an ejected backend back")
		}
		if probe(b, nil) != WentUp || !b.Available() {
			t.Fatal("two successes did not bring it back")
		}
		if probe(b, fail) != NoChange || !b.Available() {
			t.Fatal("the failure count from before the ejection was kept")
		}
	})
	t.Run("Status", func(t *testing.T) {
		b := NewBackend("a:1", 0)
		probe(b, fail)
		probe(b, fail)
		st := b.Status()
		if st.Healthy || st.Failures != 2 || st.ConsecutiveFailures != 2 || st.LastError != "refused" || st.LastCheck == nil {
			t.Fatalf("status after two failures: %+v", st)
		}
		probe(b, nil)
		if st := b.Status(); st.ConsecutiveFailures != 0 || st.Failures != 2 {
			t.Fatalf("status after a success: %+v", st)
		}
	})
}

func TestDueForProbe(t *testing.T) {
	b := NewBackend("a:1", 0)
	t0 := time.Now()
	const every, down = time.Second, 250 * time.Millisecond
	if !b.dueForProbe(t0, every, down) {
		t.Fatal("first probe not due at once")
	}
	if b.dueForProbe(t0.Add(500*time.Millisecond), every, down) {
		t.Fatal("healthy backend probed after 500 ms")
	}
	if !b.dueForProbe(t0.Add(999*time.Millisecond), every, down) {
		t.Fatal("tick jitter pushed the 1 s probe back a whole tick")
	}
	b.Eject(errors.New("refused"))
	if !b.dueForProbe(t0.Add(1250*time.Millisecond), every, down) {
		t.Fatal("ejected backend not probed within 250 ms")
	}
	// One failed probe is confirmed at the short interval, not a second later.
	c := NewBackend("a:2", 1)
	c.dueForProbe(t0, every, down)
	c.RecordProbe(errors.New("refused"), t0, 2, 2)
	if !c.dueForProbe(t0.Add(250*time.Millisecond), every, down) {
		t.Fatal("a failed probe not confirmed within 250 ms")
	}
}
