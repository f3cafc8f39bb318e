package proxy

import "sync/atomic"

// Tried is the set of backends a request has already been sent to, by set
// index; a word instead of a map keeps retries allocation-free, and is why
// lbapi.MaxBackends is 64.
type Tried uint64

// Has reports whether b is in the set.
func (t Tried) Has(b *Backend) bool { return t&(1<<uint(b.index)) != 0 }

// With returns the set plus b.
func (t Tried) With(b *Backend) Tried { return t | 1<<uint(b.index) }

// Selector picks the backend for the next attempt of a request, or nil when
// no available backend is left untried. The pick is counted in the backend's
// in-flight number before Select returns; the caller releases it.
type Selector interface {
	Select(set []*Backend, tried Tried) *Backend
}

// RoundRobin hands requests to available backends in turn. One shared
// counter, advanced once per selection, keeps any 2N consecutive selections
// even when every backend is available.
type RoundRobin struct {
	next atomic.Uint64
}

// Select implements Selector.
func (r *RoundRobin) Select(set []*Backend, tried Tried) *Backend {
	n := uint64(len(set))
	if n == 0 {
		return nil
	}
	start := r.next.Add(1) - 1
	for i := uint64(0); i < n; i++ {
		b := set[(start+i)%n]
		if b.Available() && !tried.Has(b) {
			// Counted, then checked again: a drain stores "not serving"
			// and then reads in_flight, so either the drain sees this
			// request or this request sees the drain. Without it, a
			// request could pass the check, a caller could see 0 in
			// flight and stop the backend, and the request would then be
			// sent to a backend going away.
			b.inFlight.Add(1)
			if b.Available() {
				return b
			}
			b.inFlight.Add(-1)
		}
	}
	return nil
}
