package proxy

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/posterctl/posterctl/lbapi"
)

// backendSet is the backend set the request path reads: an immutable slice behind
// an atomic pointer, replaced whole when the set changes. A request loads it
// once and works on that snapshot, with no lock and no allocation; a backend
// removed meanwhile is still safe to use (it is draining, so Select skips it).
type backendSet struct {
	cur atomic.Pointer[[]*Backend]
}

func (s *backendSet) load() []*Backend {
	if p := s.cur.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *backendSet) store(set []*Backend) { s.cur.Store(&set) }

// errUnknownBackend is an address that is not in the set.
var errUnknownBackend = errors.New("unknown backend")

// reapAfter is how long a removed backend is kept at least, even idle: a
// request that saw it available just before the removal, and has not yet
// counted itself in flight, gets that long to do so.
const reapAfter = 100 * time.Millisecond

// leavingBackend is a backend removed from the set that still finishes its
// in-flight requests.
type leavingBackend struct {
	b     *Backend
	since time.Time
}

// Backends returns the current set, in order (removed backends that are
// still draining are not in it).
func (s *Server) Backends() []*Backend { return s.set.load() }

// ReplaceBackends makes refs (as checkSet returns them: normalised
// host:port, no duplicates) the backend set. Backends already in it keep
// their state and counters, and take the name given if any; new ones get
// traffic once their health check passes; removed ones drain, then go.
func (s *Server) ReplaceBackends(refs []lbapi.BackendRef) {
	addrs := make([]string, len(refs))
	for i, r := range refs {
		addrs[i] = r.Address
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.set.load()
	byAddr := make(map[string]*Backend, len(cur))
	for _, b := range cur {
		byAddr[b.addr] = b
	}
	want := make(map[string]bool, len(addrs))
	used := make(map[int]bool, len(addrs))
	for _, a := range addrs {
		want[a] = true
		if b := byAddr[a]; b != nil {
			used[b.index] = true
		}
	}
	// A backend removed a moment ago and asked back keeps its counters if
	// its tried-set index is still free.
	revived := make(map[string]*Backend)
	for i := 0; i < len(s.leaving); i++ {
		b := s.leaving[i].b
		if !want[b.addr] || byAddr[b.addr] != nil || revived[b.addr] != nil || used[b.index] {
			continue
		}
		revived[b.addr] = b
		used[b.index] = true
		s.leaving = append(s.leaving[:i], s.leaving[i+1:]...)
		i--
	}
	next := make([]*Backend, 0, len(addrs))
	for i, a := range addrs {
		if b := byAddr[a]; b != nil {
			b.setName(refs[i].Name)
			next = append(next, b)
			continue
		}
		if b := revived[a]; b != nil {
			b.setName(refs[i].Name)
			next = append(next, b)
			s.events.add(b, lbapi.EventAdded, "back before it had drained")
			if b.SetDraining(false) {
				s.events.add(b, lbapi.EventEnabled, "")
			}
			continue
		}
		idx := 0
		for used[idx] {
			idx++
		}
		used[idx] = true
		b := newJoiningBackend(a, idx)
		b.setName(refs[i].Name)
		b.conns = newConnPool(a, &s.cfg)
		next = append(next, b)
		s.events.add(b, lbapi.EventAdded, "joins once healthy")
		s.checker.Add(b)
	}
	now := time.Now()
	for _, b := range cur {
		if want[b.addr] {
			continue
		}
		b.SetDraining(true)
		s.leaving = append(s.leaving, leavingBackend{b: b, since: now})
		s.events.add(b, lbapi.EventDraining, "removed from the set")
	}
	s.set.store(next)
	s.log.Info().Strs("backends", addrs).Msg("backend set replaced")
}

// DrainBackend stops new requests to addr; in-flight ones finish.
func (s *Server) DrainBackend(addr string) (*Backend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.find(addr)
	if b == nil {
		return nil, fmt.Errorf("%w %s", errUnknownBackend, addr)
	}
	if b.SetDraining(true) {
		s.events.add(b, lbapi.EventDraining, "")
		s.log.Info().Str("backend", addr).Msg("backend draining")
	}
	return b, nil
}

// EnableBackend ends a drain: addr gets traffic as soon as it is healthy.
// A backend removed from the set is not in it any more, so it is unknown.
func (s *Server) EnableBackend(addr string) (*Backend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b *Backend
	for _, c := range s.set.load() {
		if c.addr == addr {
			b = c
		}
	}
	if b == nil {
		return nil, fmt.Errorf("%w %s", errUnknownBackend, addr)
	}
	if b.SetDraining(false) {
		s.events.add(b, lbapi.EventEnabled, "back in rotation once healthy")
		s.log.Info().Str("backend", addr).Msg("backend enabled")
	}
	return b, nil
}

// find looks addr up in the set, then among the removed backends still
// draining. s.mu must be held.
func (s *Server) find(addr string) *Backend {
	for _, b := range s.set.load() {
		if b.addr == addr {
			return b
		}
	}
	for _, l := range s.leaving {
		if l.b.addr == addr {
			return l.b
		}
	}
	return nil
}

// everyBackend is the set followed by the removed backends still draining,
// which is what reports show.
func (s *Server) everyBackend() []*Backend {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.set.load()
	all := make([]*Backend, 0, len(cur)+len(s.leaving))
	all = append(all, cur...)
	for _, l := range s.leaving {
		all = append(all, l.b)
	}
	return all
}

// reap lets go of removed backends whose last request has finished.
func (s *Server) reap(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.leaving[:0]
	for _, l := range s.leaving {
		if l.b.inFlight.Load() > 0 || now.Sub(l.since) < reapAfter {
			kept = append(kept, l)
			continue
		}
		s.checker.Remove(l.b)
		l.b.conns.close()
		s.events.add(l.b, lbapi.EventRemoved, "")
		s.log.Info().Str("backend", l.b.addr).Msg("backend removed")
	}
	for i := len(kept); i < len(s.leaving); i++ {
		s.leaving[i] = leavingBackend{}
	}
	s.leaving = kept
}
