package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/posterctl/posterctl/lbapi"
)

// running returns the current process when the child is running and not
// being stopped.
func (c *child) running() (*Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return nil, errStopping
	}
	if c.state != Running || c.proc == nil {
		return nil, fmt.Errorf("%s is %s, not running", c.spec.Name, c.state)
	}
	return c.proc, nil
}

// beginOp serialises an operation that swaps the child's process (restart,
// hand-over) and returns the process running now; end releases the
// operation, and is nil with an error.
func (c *child) beginOp() (old *Process, end func(), err error) {
	c.opMu.Lock()
	if old, err = c.running(); err != nil {
		c.opMu.Unlock()
		return nil, nil, err
	}
	return old, c.opMu.Unlock, nil
}

// replace stops the current process (SIGTERM; SIGKILL once grace passed)
// and waits until the run loop has started a new one on the same port and
// it is ready. The new process runs what is at the spec's path now, so a
// binary rebuilt in place is picked up.
func (c *child) replace(ctx context.Context, grace time.Duration) (old, cur *Process, err error) {
	old, end, err := c.beginOp()
	if err != nil {
		return nil, nil, err
	}
	defer end()
	c.mu.Lock()
	c.replaced = old
	c.mu.Unlock()
	gctx, cancel := context.WithTimeout(ctx, grace)
	old.Stop(gctx)
	cancel()
	// The run loop starts the new process at once; its readiness is bounded
	// by the ready timeout, after which the loop treats it as a crash.
	wctx, cancel := context.WithTimeout(ctx, c.readyTimeout+time.Second)
	defer cancel()
	for {
		c.mu.Lock()
		cur, st, why, changed := c.proc, c.state, c.lastExit, c.changed
		c.mu.Unlock()
		switch {
		case cur != old && st == Running:
			return old, cur, nil
		case st == Fatal:
			return old, nil, fmt.Errorf("%s did not come back: it is fatal (last exit: %s)", c.spec.Name, why)
		}
		select {
		case <-changed:
		case <-c.ctx.Done():
			return old, nil, errStopping
		case <-wctx.Done():
			return old, nil, fmt.Errorf("%s: new process not ready within %v (state %s, last exit %s)", c.spec.Name, c.readyTimeout, st, why)
		}
	}
}

// handover starts a new process beside the running one, on the same
// inherited sockets, waits until the new one answers its ready URL with its
// own pid, makes it the current process, then stops the old one, which
// drains (SIGTERM; SIGKILL once grace passed). Connections queued on the
// shared sockets are accepted by whichever process is accepting, so none is
// refused.
func (c *child) handover(ctx context.Context, grace time.Duration) (old, cur *Process, err error) {
	old, end, err := c.beginOp()
	if err != nil {
		return nil, nil, err
	}
	defer end()
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return nil, nil, errStopping
	}
	// Counted, so that Stop waits for the old process this call owns.
	c.wg.Add(1)
	spec := c.currentSpec()
	c.mu.Unlock()
	defer c.wg.Done()

	p, err := startProcess(c.sp, spec, c.sink, c.files)
	if err != nil {
		return old, nil, err
	}
	c.log.Info().Int("pid", p.Pid()).Int("old_pid", old.Pid()).Msg("started a new generation beside the old one")
	if err := c.awaitPid(ctx, p); err != nil {
		p.Kill()
		return old, nil, err
	}
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		p.Kill()
		return old, nil, errStopping
	}
	c.proc = p
	c.state = Running
	c.sampler = usageSampler{id: p.Identity()}
	c.usage = usage{}
	c.changedLocked()
	c.mu.Unlock()
	c.log.Info().Int("pid", p.Pid()).Int("old_pid", old.Pid()).Msg("new generation ready; stopping the old one")
	// The old one drains with the cluster's grace even when the caller
	// gives up; only a kill of the whole cluster cuts it short.
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	old.Stop(gctx)
	return old, p, nil
}

// awaitPid polls the ready URL until it answers 200 with p's pid.
func (c *child) awaitPid(ctx context.Context, p *Process) error {
	ctx, cancel := context.WithTimeout(ctx, c.readyTimeout)
	defer cancel()
	probeCtx, endProbes := untilExit(ctx, p)
	defer endProbes()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		pid, err := c.answeringPid(probeCtx)
		if err == nil && pid == p.Pid() {
			return nil
		}
		if err != nil {
			last = err
		} else {
			last = fmt.Errorf("answered by pid %d", pid)
		}
		select {
		case <-p.Done():
			return fmt.Errorf("new %s exited before it was ready (%s): %s", c.spec.Name, p.ExitStatus(), c.tail.String())
		case <-c.ctx.Done():
			return errStopping
		case <-ctx.Done():
			return fmt.Errorf("new %s did not answer %s with its pid %d within %v: %v", c.spec.Name, c.spec.ReadyURL, p.Pid(), c.readyTimeout, last)
		case <-tick.C:
		}
	}
}

// answeringPid asks the ready URL which process answers it.
func (c *child) answeringPid(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.spec.ReadyURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body lbapi.Health
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("%s: %w", c.spec.ReadyURL, err)
	}
	if body.PID == 0 {
		return 0, fmt.Errorf("%s reports no \"pid\": cannot tell the new process from the old", c.spec.ReadyURL)
	}
	return body.PID, nil
}
