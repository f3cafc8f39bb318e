package supervisor

import (
	"context"
	"fmt"
	"time"

	"github.com/posterctl/posterctl/lbapi"
)

// restartFailed handles a rolling restart of a backend that did not end
// with a new generation healthy in the LB: the address stays drained (or is
// drained again), so it never goes back into rotation on the word of
// whatever answers on it, and status shows why until a restart succeeds.
func (c *child) restartFailed(admin *lbapi.Client, err error) error {
	why := err.Error() + "; left drained in the load balancer until a restart of it succeeds"
	if admin != nil {
		// Not the operation's context: a restart cut short by `down` still
		// must not leave the address enabled.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		derr := admin.Drain(ctx, c.spec.Addr)
		cancel()
		if derr != nil {
			why = fmt.Sprintf("%s; draining it in the load balancer failed too: %v", err, derr)
		}
	}
	c.setLastError(why)
	c.log.Error().Str("last_error", why).Msg("restart failed")
	return err
}

// setLastError records why the last restart failed ("" once one succeeds).
func (c *child) setLastError(why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastError = why
	c.changedLocked()
}
