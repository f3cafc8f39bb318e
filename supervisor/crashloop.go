package supervisor

import (
	"context"
	"fmt"
	"time"
)

// earlyFatalAfter is how many failures in a row, each before the child was
// ready and each with the same last line, make a backend fatal at once: a
// read-only data dir or a file that is not a database fails the same way on
// every start, and the full restart limit would spend most of a minute
// saying what the first three failures already say.
const earlyFatalAfter = 3

// sameFailures counts a child's consecutive failures before ready that
// ended with the same last line of output. The run loop owns it.
type sameFailures struct {
	line string
	n    int
}

func (f *sameFailures) observe(ready bool, line string) {
	switch {
	case ready || line == "":
		f.line, f.n = "", 0
	case line == f.line:
		f.n++
	default:
		f.line, f.n = line, 1
	}
}

// crashVerdict is what the run loop does after a crash.
type crashVerdict struct {
	delay   time.Duration
	fatal   bool
	failure string // why it is fatal
	loop    string // why it is in a crash loop it is never given up for
}

// frontDoor reports a child that serves on the supervisor's held sockets
// (the LB). It is never given up: a fatal front door would leave clients
// connecting to sockets nobody accepts from.
func (c *child) frontDoor() bool { return c.spec.FrontDoor }

// verdict applies the restart limit, the early-fatal rule (backends only)
// and the front door's never-give-up rule to a crash.
func (c *child) verdict(delay time.Duration, limitReached bool, exit string, same *sameFailures) crashVerdict {
	v := crashVerdict{delay: delay}
	switch {
	case limitReached:
		v.fatal = true
		v.failure = fmt.Sprintf("%s crashed %d times within %v (last: %s)", c.spec.Name, c.policy.Limit+1, c.policy.Window, exit)
	case same.n >= earlyFatalAfter && !c.frontDoor():
		v.fatal = true
		v.failure = fmt.Sprintf("%s failed %d times in a row before it was ready, each time with: %s", c.spec.Name, same.n, same.line)
	}
	if v.fatal && c.frontDoor() {
		v.fatal, v.failure = false, ""
		v.delay = c.policy.MaxBackoff
		v.loop = fmt.Sprintf("crash loop: more than %d restarts within %v (last: %s); retrying every %v, never giving up",
			c.policy.Limit, c.policy.Window, exit, c.policy.MaxBackoff)
	}
	return v
}

// retryNow cuts the backoff of a front door that is not running short and
// waits until a new process of it is ready: `restart lb` on a crash-looping
// LB. A process already starting is awaited instead.
func (c *child) retryNow(ctx context.Context) (*Process, error) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default: // one is pending already
	}
	return c.awaitRunning(ctx)
}

// revive starts a fatal child's run loop again with a fresh restart budget
// and waits until its new process is ready: `restart NAME` once the cause
// is fixed, as supervisord's start of a FATAL program. ok is false when the
// child was not fatal.
func (c *child) revive(ctx context.Context) (p *Process, ok bool, err error) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.mu.Lock()
	if c.state != Fatal || c.stopping {
		c.mu.Unlock()
		return nil, false, nil
	}
	c.state, c.failure, c.loop = Starting, "", ""
	c.changedLocked()
	c.mu.Unlock()
	c.log.Info().Msg("fatal child started again on request")
	c.start()
	p, err = c.awaitRunning(ctx)
	return p, true, err
}

// awaitRunning waits until the child runs a ready process, or fails to.
func (c *child) awaitRunning(ctx context.Context) (*Process, error) {
	wctx, cancel := context.WithTimeout(ctx, c.readyTimeout+time.Second)
	defer cancel()
	started := false
	for {
		c.mu.Lock()
		cur, st, why, changed, stopping := c.proc, c.state, c.lastExit, c.changed, c.stopping
		c.mu.Unlock()
		switch {
		case stopping:
			return nil, errStopping
		case st == Running && cur != nil:
			return cur, nil
		case st == Fatal:
			return nil, fmt.Errorf("%s is fatal (last exit: %s)", c.spec.Name, why)
		case st == Starting:
			started = true
		case st == Backoff && started:
			return nil, fmt.Errorf("%s crashed again before it was ready (last exit: %s)", c.spec.Name, why)
		}
		select {
		case <-changed:
		case <-c.ctx.Done():
			return nil, errStopping
		case <-wctx.Done():
			return nil, fmt.Errorf("%s: not running within %v (state %s, last exit %s)", c.spec.Name, c.readyTimeout+time.Second, st, why)
		}
	}
}

// untilRetry is how long until the next start of a child in backoff; the
// stand-in sends it as Retry-After.
func (c *child) untilRetry() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != Backoff {
		return time.Second
	}
	return time.Until(c.nextRetry)
}
