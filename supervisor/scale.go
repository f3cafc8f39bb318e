package supervisor

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/posterctl/posterctl/lbapi"
)

// Scale runs n local backends. New ones take the next free ports after the
// highest, are started and awaited until ready, then added to the LB, which
// must report them healthy. Removed ones, highest numbered first, are taken
// out of the LB's set, given up to grace to finish their in-flight
// requests, then stopped.
func (s *Supervisor) Scale(n int, grace time.Duration, say Say) error {
	if !s.opMu.TryLock() {
		return ErrBusy
	}
	defer s.opMu.Unlock()
	if s.cfg.NewBackend == nil {
		return &InvalidError{"this cluster has no backends to scale"}
	}
	least := 1
	if len(s.cfg.Remote) > 0 {
		least = 0 // the remote backends still serve
	}
	most := lbapi.MaxBackends - len(s.cfg.Remote)
	if n < least || n > most {
		return &InvalidError{fmt.Sprintf("cannot scale to %d backends: want %d to %d", n, least, most)}
	}
	have := s.backendChildren()
	admin := s.admin()
	defer admin.Close()
	begun := time.Now()
	var err error
	switch {
	case n == len(have):
		say("already %d backends", n)
		return nil
	case n > len(have):
		err = s.scaleUp(admin, have, n-len(have), say)
	default:
		err = s.scaleDown(admin, have, have[n:], grace, say)
	}
	if err != nil {
		return err
	}
	say("scaled from %d to %d backends in %v", len(have), n, time.Since(begun).Round(time.Millisecond))
	return nil
}

// backendChildren are the local backends, in order.
func (s *Supervisor) backendChildren() []*child {
	var out []*child
	for _, c := range s.childList() {
		if c.spec.Addr != "" {
			out = append(out, c)
		}
	}
	return out
}

func (s *Supervisor) scaleUp(admin *lbapi.Client, have []*child, add int, say Say) error {
	ctx := s.opCtx
	seq, port := 0, 0
	for _, c := range have {
		seq, port = max(seq, c.seq), max(port, c.spec.Port)
	}
	if port == 0 {
		port = s.cfg.BasePort - 1
	}
	var added []*child
	undo := func(err error) error {
		for _, c := range added {
			c.Stop(context.Background()) // never served a request: no drain
			s.removeChild(c)
			closeFiles(c.files)
		}
		s.updateLBArgs()
		return err
	}
	for range add {
		seq++
		p, err := nextFreePort(port + 1)
		if err != nil {
			return undo(err)
		}
		port = p
		spec := s.cfg.NewBackend(fmt.Sprintf("backend-%d", seq), port)
		files, err := bindBackend(ctx, spec)
		if err != nil {
			return undo(err)
		}
		c := newChild(spec, s.cfg.Restart, s.cfg.ReadyTimeout, s.sp, s.cfg.Sink, files, s.log)
		c.seq = seq
		if !s.addChild(c) {
			closeFiles(files)
			return undo(errStopping)
		}
		added = append(added, c)
		c.start()
		say("%s: starting on port %d", spec.Name, port)
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout+time.Second)
	err := s.awaitStage(wctx, added)
	cancel()
	if err != nil {
		return undo(fmt.Errorf("scale: %w", err))
	}
	say("%d new backends ready", len(added))
	if admin != nil {
		if err := admin.Set(ctx, s.lbSet()); err != nil {
			return undo(fmt.Errorf("scale: add to the LB: %w", err))
		}
		for _, c := range added {
			wctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
			b, err := admin.Await(wctx, c.spec.Addr, lbapi.Healthy)
			cancel()
			if err != nil {
				// The LB has the set; leave it, so a backend that turns
				// healthy later still joins.
				s.updateLBArgs()
				return fmt.Errorf("scale: %s: the LB does not report it healthy (%s): %w", c.spec.Name, stateOf(b), err)
			}
			say("%s: healthy in the LB", c.spec.Name)
		}
	}
	s.updateLBArgs()
	return nil
}

func (s *Supervisor) scaleDown(admin *lbapi.Client, have, remove []*child, grace time.Duration, say Say) error {
	ctx := s.opCtx
	slices.Reverse(remove) // highest numbered first
	keep := have[:len(have)-len(remove)]
	if admin != nil {
		if err := admin.Set(ctx, s.addrs(keep)); err != nil {
			return fmt.Errorf("scale: remove from the LB: %w", err)
		}
		say("draining %d backends in the LB", len(remove))
	}
	s.updateLBArgsFor(keep)
	for _, c := range remove {
		begun := time.Now()
		if admin != nil {
			wctx, cancel := context.WithTimeout(ctx, grace)
			b, err := admin.Await(wctx, c.spec.Addr, drained)
			cancel()
			switch {
			case ctx.Err() != nil:
				return fmt.Errorf("scale: %w", errStopping)
			case err != nil && b != nil:
				say("%s: %d requests still in flight after %v; stopping it anyway", c.spec.Name, b.InFlight, grace)
			case err != nil:
				return fmt.Errorf("scale: wait for %s to drain: %w", c.spec.Name, err)
			}
		}
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
		c.Stop(gctx)
		cancel()
		s.removeChild(c)
		closeFiles(c.files) // its process is gone: the port is free again
		say("%s: drained and stopped in %v", c.spec.Name, time.Since(begun).Round(time.Millisecond))
	}
	return nil
}

// addChild puts c among the backends (before the LB's stage), unless the
// stop has begun. The list is replaced, not changed in place, so a reader
// holding the old one is not disturbed.
func (s *Supervisor) addChild(c *child) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	i := slices.IndexFunc(s.children, func(o *child) bool { return o.spec.Stage > c.spec.Stage })
	if i < 0 {
		i = len(s.children)
	}
	s.children = slices.Insert(slices.Clone(s.children), i, c)
	return true
}

func (s *Supervisor) removeChild(c *child) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.children = slices.DeleteFunc(slices.Clone(s.children), func(o *child) bool { return o == c })
}

// lbSet is the LB's backend set: the local backends, then the remote ones.
func (s *Supervisor) lbSet() []string { return s.addrs(s.backendChildren()) }

func (s *Supervisor) addrs(local []*child) []string {
	var out []string
	for _, c := range local {
		// NAME=host:port: the LB shows the name status shows.
		out = append(out, c.spec.Name+"="+c.spec.Addr)
	}
	return append(out, s.cfg.Remote...)
}

func (s *Supervisor) updateLBArgs() { s.updateLBArgsFor(s.backendChildren()) }

// updateLBArgsFor gives the LB the arguments for the set local+remote, so
// that an LB restarted later (a crash, restart lb) serves that set.
func (s *Supervisor) updateLBArgsFor(local []*child) {
	if s.cfg.LBArgs == nil {
		return
	}
	for _, c := range s.childList() {
		if c.spec.Handover {
			c.setArgs(s.cfg.LBArgs(s.addrs(local)))
		}
	}
}

// nextFreePort is the first port from p on that can be bound.
func nextFreePort(p int) (int, error) {
	for ; p <= 65535; p++ {
		if portFree(p) == nil {
			return p, nil
		}
	}
	return 0, fmt.Errorf("scale: no free port left after %d", p)
}
