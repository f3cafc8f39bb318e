package proxy

import (
	"context"
	"errors"
	"sync"
	"time"
)

// A hung backend (SIGSTOPped, deadlocked, swapping) still has its
// connections accepted by the kernel, so requests sent to it would wait out
// the 30 s response-header timeout, and its probe only fails after two
// probe timeouts. The hung watch tells hung from slow with one rule: hung
// means nothing at all comes back from the backend.
//
//   - Every read that brings bytes from a backend, on any of its connections,
//     bumps a counter (connPool.heard); a probe that passes stamps
//     Backend.heardAt. The watch, ticking every hungTick, turns the counter
//     into "last heard" times.
//   - When the oldest attempt waiting for a response header has waited
//     hungSuspect and nothing has been heard for as long, the watch probes
//     the backend itself, one probe at a time with a hungProbeTimeout, for
//     as long as this lasts.
//   - When the oldest wait and the silence both reach hungAfter and a probe
//     sent after the last sign of life has failed, the backend is hung: it
//     is ejected (probes bring it back) and every attempt waiting on it is
//     abandoned: its connection is closed, never pooled, so an answer that
//     comes after SIGCONT reaches no one. The request path retries what the
//     retry rule allows on another backend and answers the rest 504.
//
// A slow backend is not hung: 50 logins each spending 2 s in bcrypt leave
// its connections silent, but it answers the probe, and any answer on any
// connection is a sign of life as well.
const (
	hungTick = 50 * time.Millisecond
	// The probe goes out early and may take most of a second: a backend on a
	// machine whose cores are saturated can take hundreds of milliseconds
	// to answer /healthz while alive, and a false verdict costs a 504. A
	// hung one is still declared within about 1.2 s of its oldest request.
	hungSuspect      = 200 * time.Millisecond
	hungProbeTimeout = 900 * time.Millisecond
	hungAfter        = time.Second
)

// errHung is an attempt abandoned because its backend stopped answering.
var errHung = errors.New("backend stopped answering (hung)")

// busyList is the connections of a pool that are out on attempts, linked
// through the connections themselves so that taking and returning one costs
// no allocation. Guarded by connPool.mu.
type busyList struct{ head *upConn }

func (l *busyList) add(c *upConn) {
	c.prev, c.next = nil, l.head
	if l.head != nil {
		l.head.prev = c
	}
	l.head = c
}

// remove takes c out; c not in the list is left alone.
func (l *busyList) remove(c *upConn) {
	if c.prev == nil && l.head != c {
		return
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
}

// oldestWait is when the longest-waiting attempt's request went out, in
// Unix nanoseconds; 0 when no attempt waits for a response header.
func (u *connPool) oldestWait() int64 {
	var oldest int64
	u.mu.Lock()
	for c := u.busy.head; c != nil; c = c.next {
		if w := c.waitSince.Load(); w != 0 && (oldest == 0 || w < oldest) {
			oldest = w
		}
	}
	u.mu.Unlock()
	return oldest
}

// abandonWaiting closes the connection of every attempt waiting for a
// response header, marking it so the attempt fails as errHung.
func (u *connPool) abandonWaiting() int {
	n := 0
	u.mu.Lock()
	for c := u.busy.head; c != nil; c = c.next {
		if c.waitSince.Load() != 0 {
			c.abandoned.Store(true)
			c.conn.Close()
			n++
		}
	}
	u.mu.Unlock()
	return n
}

// hungWatch runs the rule above over every backend of a server. It owns
// one goroutine and the probes it starts; stop ends and waits for them.
type hungWatch struct {
	backends func() []*Backend
	probe    ProbeFunc
	// hung is called once per backend found hung, before its attempts are
	// abandoned; it ejects the backend.
	hung func(*Backend)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	state  map[*Backend]*watchState // the watch goroutine's own
}

// watchState is what the watch knows of one backend.
type watchState struct {
	heardCount uint64
	heard      time.Time // last sign of life seen
	mu         sync.Mutex
	probing    bool
	failedFrom time.Time // start of the latest failed probe
}

func newHungWatch(backends func() []*Backend, probe ProbeFunc, hung func(*Backend)) *hungWatch {
	ctx, cancel := context.WithCancel(context.Background())
	return &hungWatch{backends: backends, probe: probe, hung: hung, ctx: ctx, cancel: cancel,
		state: make(map[*Backend]*watchState)}
}

func (w *hungWatch) start() {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		tick := time.NewTicker(hungTick)
		defer tick.Stop()
		for {
			select {
			case <-w.ctx.Done():
				return
			case now := <-tick.C:
				w.scan(now)
			}
		}
	}()
}

func (w *hungWatch) stop() {
	w.cancel()
	w.wg.Wait()
}

func (w *hungWatch) scan(now time.Time) {
	set := w.backends()
	seen := make(map[*Backend]bool, len(set))
	for _, b := range set {
		seen[b] = true
		w.check(b, now)
	}
	for b := range w.state {
		if !seen[b] {
			delete(w.state, b)
		}
	}
}

func (w *hungWatch) check(b *Backend, now time.Time) {
	st := w.state[b]
	if st == nil {
		st = &watchState{heard: now}
		w.state[b] = st
	}
	if n := b.conns.heard.Load(); n != st.heardCount {
		st.heardCount, st.heard = n, now
	}
	if h := b.heardAt.Load(); h > st.heard.UnixNano() {
		st.heard = time.Unix(0, h)
	}
	oldest := b.conns.oldestWait()
	if oldest == 0 {
		return
	}
	waited, silent := now.Sub(time.Unix(0, oldest)), now.Sub(st.heard)
	if waited < hungSuspect || silent < hungSuspect {
		return
	}
	st.mu.Lock()
	failed := st.failedFrom.After(st.heard)
	probing := st.probing
	if !probing {
		st.probing = true
	}
	st.mu.Unlock()
	if failed && waited >= hungAfter && silent >= hungAfter {
		w.hung(b)
		b.conns.abandonWaiting()
		return
	}
	if !probing {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.probeOnce(b, st)
		}()
	}
}

// probeOnce probes b with the short timeout; a pass is a sign of life.
func (w *hungWatch) probeOnce(b *Backend, st *watchState) {
	begun := time.Now()
	ctx, cancel := context.WithTimeout(w.ctx, hungProbeTimeout)
	err := w.probe(ctx, b)
	cancel()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.probing = false
	if err == nil {
		b.heard(time.Now())
		return
	}
	if w.ctx.Err() == nil {
		st.failedFrom = begun
	}
}

// ejectHung takes a hung backend out of rotation; probes bring it back.
func (s *Server) ejectHung(b *Backend) {
	if tr := b.Eject(errHung); tr != NoChange {
		s.metrics.ejections.WithLabelValues(b.addr).Inc()
		s.stateChanged(b, tr, errHung, "hung watch")
	}
}
