package proxy

import (
	"sync"
	"time"
)

// Event kinds: what happened to a backend.
const (
	EventAdded    = "added"    // joined the set (PUT /admin/backends)
	EventRemoved  = "removed"  // left the set, after its last request
	EventUp       = "up"       // passed its health checks
	EventDown     = "down"     // failed its checks, or a request to it
	EventDraining = "draining" // taken out of rotation on purpose
	EventEnabled  = "enabled"  // put back after a drain
)

// Event is one backend state change, as the dashboard's history shows it.
type Event struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Backend string    `json:"backend"`
	Kind    string    `json:"kind"`
	Detail  string    `json:"detail,omitempty"`
}

// eventLog keeps the most recent events in a ring: state changes are rare,
// but a flapping backend must not grow memory without bound.
type eventLog struct {
	mu   sync.Mutex
	ring []Event
	next int // where the next event goes, once the ring is full
	seq  uint64
	now  func() time.Time
}

func newEventLog(size int) *eventLog {
	return &eventLog{ring: make([]Event, 0, size), now: time.Now}
}

func (l *eventLog) add(backend, kind, detail string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	e := Event{Seq: l.seq, Time: l.now().UTC(), Backend: backend, Kind: kind, Detail: detail}
	if len(l.ring) < cap(l.ring) {
		l.ring = append(l.ring, e)
		return
	}
	l.ring[l.next] = e
	l.next = (l.next + 1) % len(l.ring)
}

// recent returns the events still kept, newest first.
func (l *eventLog) recent() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Event, 0, len(l.ring))
	for i := range l.ring {
		// l.next is the oldest once the ring has wrapped, 0 before.
		j := (l.next + len(l.ring) - 1 - i) % len(l.ring)
		out = append(out, l.ring[j])
	}
	return out
}
