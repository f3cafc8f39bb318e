package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Precheck says, without creating or taking anything, whether Start would
// be refused at once: a cluster already answers in the run dir, or a port a
// child needs is taken (naming its holder). The caller runs it before work
// that leaves traces, such as creating the store; Start checks both again.
func Precheck(ctx context.Context, cfg Config) error {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cl := NewClient(cfg.RunDir)
	defer cl.CloseIdleConnections()
	st, err := cl.Status(cctx)
	if err == nil {
		return &AlreadyRunningError{Pid: st.Supervisor.Pid}
	}
	if !errors.Is(err, ErrNotRunning) && ctx.Err() != nil {
		return ctx.Err()
	}
	var ports []int
	for _, sp := range cfg.Specs {
		if sp.Port > 0 {
			ports = append(ports, sp.Port)
		}
		ports = append(ports, sp.Extra...)
	}
	if err := CheckPorts(ctx, ports); err != nil {
		return fmt.Errorf("check ports: %w", err)
	}
	return nil
}
