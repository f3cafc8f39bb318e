package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/rs/zerolog"
)

// startEarlyFatal starts a supervisor of spec alone, which must fail the
// same way three times before it is ready; it returns the supervisor, the
// reason and how long Start took.
func startEarlyFatal(t *testing.T, spec Spec, readyTimeout time.Duration) (*Supervisor, string, time.Duration) {
	t.Helper()
	s, err := New(Config{
		Specs:        []Spec{spec},
		RunDir:       runDir(t),
		Restart:      DefaultRestartPolicy(), // limit 10 in 60 s: 43 s of backoff
		ReadyTimeout: readyTimeout,
		Sink:         &lines{},
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	begun := time.Now()
	err = s.Start(context.Background())
	took := time.Since(begun)
	var se *StartError
	if !errors.As(err, &se) {
		t.Fatalf("start: %v, want a StartError", err)
	}
	if !strings.Contains(se.Reason, "3 times in a row") || !strings.Contains(se.Reason, "unable to open database file") {
		t.Fatalf("reason %q: want three identical failures with the process's own last line", se.Reason)
	}
	return s, se.Reason, took
}

// A backend that fails the same way before it is ready is fatal after
// earlyFatalAfter failures, long before the restart limit, with its last
// error as the reason.
func TestEarlyFatal(t *testing.T) {
	s, reason, took := startEarlyFatal(t, fake("b1", "exit1", clitest.FreePort(t), 0), 5*time.Second)
	// Backoff 100 ms + 200 ms between the three tries.
	if took > 5*time.Second {
		t.Fatalf("fatal after %v, want well before the restart limit", took)
	}
	c := childStatus(t, s, "b1")
	if c.State != Fatal || c.Restarts != 2 || !strings.Contains(c.Reason, "in a row") {
		t.Fatalf("status %+v, want fatal after 2 restarts with the reason", c)
	}
	t.Logf("fatal after %v: %s", took.Round(time.Millisecond), reason)
}

// TestEarlyFatalHeldSocket: a backend whose port the supervisor holds is
// probed on a socket the kernel accepts on even with no process behind it.
// A process that exits at once must still count as failing with its own
// last line, at once, not as "not ready" when the ready timeout ends a
// probe nobody answers (which broke the run of identical failures).
func TestEarlyFatalHeldSocket(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0") // never accepted from
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	spec := fake("b1", "exit1", clitest.FreePort(t), 0)
	spec.ReadyURL = "http://" + held.Addr().String() + "/healthz"
	const readyTimeout = 5 * time.Second
	_, _, took := startEarlyFatal(t, spec, readyTimeout)
	// Three probes left to the ready timeout would take three of them.
	if took >= readyTimeout {
		t.Fatalf("fatal after %v: the probes waited out the ready timeout", took)
	}
}

func TestSameFailures(t *testing.T) {
	var f sameFailures
	for _, step := range []struct {
		ready bool
		line  string
		want  int
	}{
		{false, "a", 1}, {false, "a", 2}, {false, "b", 1}, {false, "b", 2},
		{true, "b", 0}, {false, "b", 1}, {false, "", 0}, {false, "b", 1}, {false, "b", 2}, {false, "b", 3},
	} {
		f.observe(step.ready, step.line)
		if f.n != step.want {
			t.Fatalf("after %+v: n = %d", step, f.n)
		}
	}
}

// status shows why a backend is not plainly healthy, from its /healthz.
func TestStatusHealthReason(t *testing.T) {
	port := clitest.FreePort(t)
	b := fake("b1", "degraded", port, 0)
	b.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	ok := fake("b2", "serve", clitest.FreePort(t), 0)
	ok.Addr = fmt.Sprintf("127.0.0.1:%d", ok.Port)
	s, _ := newSup(t, b, ok)
	start(t, s)
	if got := childStatus(t, s, "b1").Reason; got != "degraded: the disk is full: writes get 507" {
		t.Fatalf("b1 reason %q", got)
	}
	if got := childStatus(t, s, "b2").Reason; got != "" {
		t.Fatalf("healthy b2 has reason %q", got)
	}
}
