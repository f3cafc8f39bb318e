package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	psnet "github.com/shirou/gopsutil/v3/net"
	"github.com/shirou/gopsutil/v3/process"
)

// PortInUseError says which process holds a port we need.
type PortInUseError struct {
	Port   int
	Pid    int    // 0 when the holder could not be found (another user's process, say)
	Holder string // process name
	Err    error
}

func (e *PortInUseError) Error() string {
	if e.Pid == 0 {
		return fmt.Sprintf("port %d is already in use (holder not found: %v)", e.Port, e.Err)
	}
	return fmt.Sprintf("port %d is already in use by pid %d (%s)", e.Port, e.Pid, e.Holder)
}

func (e *PortInUseError) Unwrap() error { return e.Err }

// portFree reports whether a TCP port can be bound on every interface. A
// listener on any single address (127.0.0.1 included) makes the wildcard
// bind fail, so this one check covers the LB, health and backend listeners.
func portFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}

// CheckPorts returns a *PortInUseError for the first port that is taken,
// naming the process that listens on it.
func CheckPorts(ctx context.Context, ports []int) error {
	seen := map[int]bool{}
	for _, p := range ports {
		if p < 1 || p > 65535 {
			return fmt.Errorf("port %d is out of range 1-65535", p)
		}
		if seen[p] {
			return fmt.Errorf("port %d is configured twice", p)
		}
		seen[p] = true
	}
	for _, p := range ports {
		if err := portFree(p); err != nil {
			return portHolder(ctx, p, err)
		}
	}
	return nil
}

// portHolder finds who listens on port, through gopsutil's view of the
// kernel's socket tables.
func portHolder(ctx context.Context, port int, bindErr error) error {
	e := &PortInUseError{Port: port, Err: bindErr}
	conns, err := psnet.ConnectionsWithContext(ctx, "tcp")
	if err != nil {
		e.Err = errors.Join(bindErr, fmt.Errorf("list connections: %w", err))
		return e
	}
	for _, c := range conns {
		if c.Status != "LISTEN" || int(c.Laddr.Port) != port || c.Pid == 0 {
			continue
		}
		e.Pid = int(c.Pid)
		if p, err := process.NewProcessWithContext(ctx, c.Pid); err == nil {
			e.Holder, _ = p.NameWithContext(ctx)
		}
		break
	}
	return e
}

// waitPortFree polls until port can be bound or ctx ends; a crashed child's
// port may be held a little longer by what is left of its process group.
func waitPortFree(ctx context.Context, port int) error {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		err := portFree(port)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return portHolder(context.Background(), port, err)
		case <-tick.C:
		}
	}
}
