package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/posterctl/posterctl/lbapi"
)

// InvalidError is a restart or scale the cluster cannot do as asked (an
// unknown child, a count out of range); nothing was changed.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }

// ErrBusy means another restart or scale holds the cluster.
var ErrBusy = errors.New("a restart or scale is already in progress; try again when it is done")

// Say receives one line per step of a restart or scale, for the user.
type Say func(format string, args ...any)

// Restart restarts the child called name, or with name "" every local
// backend one at a time. A backend is drained in the LB, given up to grace
// to finish its in-flight requests, stopped, started again on its port,
// awaited until ready and enabled in the LB again, which must then report
// it healthy. The LB (a Handover child) is replaced by a new generation on
// the same sockets instead. Each start runs the binary now at the child's
// path, which is how a new build is deployed.
func (s *Supervisor) Restart(name string, grace time.Duration, say Say) error {
	if !s.opMu.TryLock() {
		return ErrBusy
	}
	defer s.opMu.Unlock()
	targets, err := s.restartTargets(name)
	if err != nil {
		return err
	}
	admin := s.admin()
	defer admin.Close()
	begun := time.Now()
	for _, c := range targets {
		if c.spec.Handover {
			err = s.handoverLB(c, grace, say)
		} else {
			err = s.restartBackend(admin, c, grace, say)
		}
		if err != nil {
			return err
		}
	}
	say("restarted %d in %v", len(targets), time.Since(begun).Round(time.Millisecond))
	return nil
}

func (s *Supervisor) restartTargets(name string) ([]*child, error) {
	var names []string
	var backends []*child
	for _, c := range s.childList() {
		if c.spec.Name == name {
			return []*child{c}, nil
		}
		names = append(names, c.spec.Name)
		if !c.spec.Handover {
			backends = append(backends, c)
		}
	}
	if name != "" {
		return nil, &InvalidError{fmt.Sprintf("no child called %q (children: %s)", name, strings.Join(names, ", "))}
	}
	if len(backends) == 0 {
		return nil, &InvalidError{"no local backend to restart"}
	}
	return backends, nil
}

// admin is the LB's admin client, or nil without an LB; Close is nil-safe.
func (s *Supervisor) admin() *lbapi.Client {
	if s.cfg.AdminURL == "" {
		return nil
	}
	return lbapi.NewClient(s.cfg.AdminURL, 5*time.Second, lbapi.WithToken(s.adminToken))
}

func (s *Supervisor) restartBackend(admin *lbapi.Client, c *child, grace time.Duration, say Say) error {
	ctx, name, addr := s.opCtx, c.spec.Name, c.spec.Addr
	begun := time.Now()
	if cur, revived, err := c.revive(ctx); revived {
		if err != nil {
			return c.restartFailed(admin, fmt.Errorf("restart %s: %w", name, err))
		}
		say("%s: was fatal; started pid %d", name, cur.Pid())
		return s.backInRotation(admin, c, begun, say)
	}
	if _, err := c.running(); err != nil {
		return fmt.Errorf("restart %s: %w", name, err)
	}
	if admin != nil {
		if err := admin.Drain(ctx, addr); err != nil {
			return fmt.Errorf("restart %s: drain: %w", name, err)
		}
		wctx, cancel := context.WithTimeout(ctx, grace)
		b, err := admin.Await(wctx, addr, drained)
		cancel()
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("restart %s: %w", name, errStopping)
		case err != nil && b != nil:
			say("%s: %d requests still in flight after %v; stopping it anyway", name, b.InFlight, grace)
		case err != nil:
			return fmt.Errorf("restart %s: wait for the drain: %w", name, err)
		default:
			say("%s: drained in %v", name, time.Since(begun).Round(time.Millisecond))
		}
	}
	old, cur, err := c.replace(ctx, grace)
	if err != nil {
		// Left drained: whatever answers on the address now is not a
		// generation that passed its readiness check.
		return c.restartFailed(admin, fmt.Errorf("restart %s: %w", name, err))
	}
	say("%s: pid %d replaced by pid %d, ready", name, old.Pid(), cur.Pid())
	return s.backInRotation(admin, c, begun, say)
}

// backInRotation enables a restarted backend in the LB and waits until the
// LB reports it healthy; only then is its last restart error cleared.
func (s *Supervisor) backInRotation(admin *lbapi.Client, c *child, begun time.Time, say Say) error {
	ctx, name, addr := s.opCtx, c.spec.Name, c.spec.Addr
	if admin != nil {
		if err := admin.Enable(ctx, addr); err != nil {
			return c.restartFailed(admin, fmt.Errorf("restart %s: enable: %w", name, err))
		}
		wctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
		b, err := admin.Await(wctx, addr, lbapi.Healthy)
		cancel()
		if err != nil {
			return c.restartFailed(admin, fmt.Errorf("restart %s: the LB does not report it healthy (%s): %w", name, stateOf(b), err))
		}
	}
	c.setLastError("")
	say("%s: restarted in %v", name, time.Since(begun).Round(time.Millisecond))
	return nil
}

// drained is an Await condition: the backend has no request in flight, or
// the LB has let it go.
func drained(b *lbapi.AdminBackend) bool { return b == nil || b.InFlight == 0 }

func stateOf(b *lbapi.AdminBackend) string {
	if b == nil {
		return "not listed"
	}
	return b.State
}

func (s *Supervisor) handoverLB(c *child, grace time.Duration, say Say) error {
	begun := time.Now()
	if _, err := c.running(); err != nil && !errors.Is(err, errStopping) && c.frontDoor() {
		// Crash-looping: nothing to hand over from; start it now instead
		// of at the end of its backoff.
		cur, err := c.retryNow(s.opCtx)
		if err != nil {
			return fmt.Errorf("restart %s: %w", c.spec.Name, err)
		}
		say("%s: was not running; started pid %d in %v", c.spec.Name, cur.Pid(), time.Since(begun).Round(time.Millisecond))
		return nil
	}
	old, cur, err := c.handover(s.opCtx, grace)
	if err != nil {
		return fmt.Errorf("restart %s: %w", c.spec.Name, err)
	}
	say("%s: pid %d replaced by pid %d on the same sockets in %v", c.spec.Name, old.Pid(), cur.Pid(), time.Since(begun).Round(time.Millisecond))
	return nil
}
