package supervisor

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/shirou/gopsutil/v3/process"
)

// Identity names one process for its whole life: a pid alone can be reused
// by an unrelated process, pid plus create time cannot.
type Identity struct {
	Pid        int    `json:"pid"`
	CreateTime int64  `json:"create_time_ms"` // ms since the epoch, as gopsutil reports it
	Name       string `json:"name"`
}

// Identify reads the identity of a running process.
func Identify(ctx context.Context, pid int) (Identity, error) {
	p, err := process.NewProcessWithContext(ctx, int32(pid))
	if err != nil {
		return Identity{}, fmt.Errorf("process %d: %w", pid, err)
	}
	ct, err := p.CreateTimeWithContext(ctx)
	if err != nil {
		return Identity{}, fmt.Errorf("process %d create time: %w", pid, err)
	}
	name, err := p.NameWithContext(ctx)
	if err != nil {
		return Identity{}, fmt.Errorf("process %d name: %w", pid, err)
	}
	return Identity{Pid: pid, CreateTime: ct, Name: name}, nil
}

// Alive reports whether the process named by id still runs. A zombie has
// exited even though kill(pid, 0) still succeeds on it, so it counts as dead.
func (id Identity) Alive(ctx context.Context) bool {
	if id.Pid <= 0 {
		return false
	}
	p, err := process.NewProcessWithContext(ctx, int32(id.Pid))
	if err != nil {
		return false
	}
	ct, err := p.CreateTimeWithContext(ctx)
	if err != nil || ct != id.CreateTime {
		return false
	}
	if id.Name != "" {
		if name, err := p.NameWithContext(ctx); err != nil || name != id.Name {
			return false
		}
	}
	st, err := p.StatusWithContext(ctx)
	if err != nil {
		return false
	}
	for _, s := range st {
		if s == process.Zombie {
			return false
		}
	}
	return true
}

// Signal sends sig to the process named by id, unless it is gone: a pid
// alone may name an unrelated process by now.
func (id Identity) Signal(ctx context.Context, sig syscall.Signal) error {
	if !id.Alive(ctx) {
		return nil
	}
	return signalPid(id.Pid, sig)
}

// WaitGone polls until the process named by id is dead or ctx ends.
func (id Identity) WaitGone(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for id.Alive(ctx) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("process %d still running: %w", id.Pid, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// usageSampler turns two samples of a process's CPU time into a current CPU
// percentage; gopsutil's own CPUPercent is an average over the process's life.
type usageSampler struct {
	id      Identity
	cpuSecs float64
	at      time.Time
}

type usage struct {
	CPUPercent float64
	RSS        uint64
}

var errNotSameProcess = errors.New("process gone or replaced")

// sample returns the CPU % since the previous sample (0 on the first) and
// the resident set size.
func (s *usageSampler) sample(ctx context.Context, now time.Time) (usage, error) {
	if !s.id.Alive(ctx) {
		return usage{}, errNotSameProcess
	}
	p, err := process.NewProcessWithContext(ctx, int32(s.id.Pid))
	if err != nil {
		return usage{}, err
	}
	times, err := p.TimesWithContext(ctx)
	if err != nil {
		return usage{}, fmt.Errorf("cpu times: %w", err)
	}
	mem, err := p.MemoryInfoWithContext(ctx)
	if err != nil {
		return usage{}, fmt.Errorf("memory: %w", err)
	}
	total := times.User + times.System
	u := usage{RSS: mem.RSS, CPUPercent: cpuPercent(s.cpuSecs, s.at, total, now)}
	s.cpuSecs, s.at = total, now
	return u, nil
}

// cpuPercent is the CPU used between two samples as a share of the wall
// time between them (100 = one core busy); 0 without a previous sample.
func cpuPercent(prevSecs float64, prevAt time.Time, secs float64, at time.Time) float64 {
	wall := at.Sub(prevAt).Seconds()
	if prevAt.IsZero() || wall <= 0 {
		return 0
	}
	return max(0, (secs-prevSecs)/wall*100)
}
