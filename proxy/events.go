package proxy

import (
	"sync"
	"time"

	"github.com/posterctl/posterctl/lbapi"
)

// eventLog keeps the most recent events in a ring: state changes are rare,
// but a flapping backend must not grow memory without bound.
type eventLog struct {
	mu   sync.Mutex
	ring []lbapi.Event
	next int // where the next event goes, once the ring is full
	seq  uint64
	now  func() time.Time
}

func newEventLog(size int) *eventLog {
	return &eventLog{ring: make([]lbapi.Event, 0, size), now: time.Now}
}

// add records an event of b under the name it has now, which a later PUT
// of the set may change.
func (l *eventLog) add(b *Backend, kind, detail string) {
	name := b.Name()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	e := lbapi.Event{Seq: l.seq, Time: l.now().UTC(), Backend: b.addr, Name: name, Kind: kind, Detail: detail}
	if len(l.ring) < cap(l.ring) {
		l.ring = append(l.ring, e)
		return
	}
	l.ring[l.next] = e
	l.next = (l.next + 1) % len(l.ring)
}

// recent returns the events still kept, newest first.
func (l *eventLog) recent() []lbapi.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]lbapi.Event, 0, len(l.ring))
	for i := range l.ring {
		// l.next is the oldest once the ring has wrapped, 0 before.
		j := (l.next + len(l.ring) - 1 - i) % len(l.ring)
		out = append(out, l.ring[j])
	}
	return out
}
