package proxy

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posterctl/posterctl/lbapi"
)

// ParseBackend normalises a backend given as host:port or http://host:port to
// host:port, the form used in logs, metrics and /health.
func ParseBackend(s string) (string, error) {
	raw := strings.TrimSpace(s)
	if raw == "" {
		return "", fmt.Errorf("backend address is empty: want host:port or http://host:port")
	}
	hostport := raw
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil {
			return "", fmt.Errorf("backend %q: %w", s, err)
		}
		if u.Scheme != "http" {
			return "", fmt.Errorf("backend %q: scheme %q not supported: want http://host:port", s, u.Scheme)
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return "", fmt.Errorf("backend %q: want only http://host:port, without path, query or user", s)
		}
		hostport = u.Host
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("backend %q: want host:port or http://host:port", s)
	}
	if host == "" {
		return "", fmt.Errorf("backend %q: host is empty", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("backend %q: port %q is not a number from 1 to 65535", s, port)
	}
	return net.JoinHostPort(host, port), nil
}

// Backend is one upstream server and everything the balancer knows about it.
// The request path only touches atomics; state changes, which are rare, take
// the mutex so that a transition is decided and logged exactly once.
type Backend struct {
	addr        string // host:port
	accessField []byte // what names it in an access line (backendField)
	accessOK    []byte // the same after a status of 200, the usual line's (statusOKField)
	index       int    // position in the set, for the per-request tried set
	// name is what reports show first (see Name); a PUT of the set may
	// change it while requests read it.
	name atomic.Pointer[string]
	// conns is the connection pool to this backend, set when it joins a
	// Server; it lives and dies with the backend, so a set change needs no
	// second table kept in step with the set.
	conns *connPool

	// serving is healthy && !draining, kept in one word so the request path
	// decides with a single load.
	serving  atomic.Bool
	healthy  atomic.Bool
	draining atomic.Bool
	inFlight atomic.Int64
	requests atomic.Uint64
	failures atomic.Uint64
	// consecFail is read on the request path to skip a store when zero.
	consecFail atomic.Int64
	// heardAt is when a probe last passed, in Unix nanoseconds: a sign of
	// life for the hung watch (hung.go).
	heardAt atomic.Int64

	mu          sync.Mutex
	consecOK    int // successful probes while down
	probeFail   int // failed probes while up
	lastCheck   time.Time
	lastErr     string
	lastProbeAt time.Time

	stats backendStats
	// codes are its Prometheus request counters (see metrics.observe).
	codes codeCounters
}

// NewBackend returns a backend that starts out available: until a probe says
// otherwise there is no reason to refuse traffic (caddy#6410).
func NewBackend(addr string, index int) *Backend {
	b := newJoiningBackend(addr, index)
	b.healthy.Store(true)
	b.serving.Store(true)
	return b
}

// newJoiningBackend returns a backend added at run time: unlike one given at
// start-up it waits for its health check to pass, because a caller that adds
// a backend and sees it take traffic must be able to trust that it answers.
func newJoiningBackend(addr string, index int) *Backend {
	return &Backend{addr: addr, accessField: backendField(addr), accessOK: statusOKField(addr), index: index}
}

// Addr is the backend's host:port.
func (b *Backend) Addr() string { return b.addr }

// Available reports whether the balancer may send new requests here.
func (b *Backend) Available() bool { return b.serving.Load() }

// State is the backend's state as one word; draining wins over health,
// because a draining backend gets no new requests whatever its probes say.
func (b *Backend) State() string {
	switch {
	case b.draining.Load():
		return lbapi.StateDraining
	case b.healthy.Load():
		return lbapi.StateHealthy
	}
	return lbapi.StateDown
}

// setHealthy must be called with mu held.
func (b *Backend) setHealthy(v bool) {
	b.healthy.Store(v)
	b.serving.Store(v && !b.draining.Load())
}

// SetDraining takes the backend out of rotation (true) or lets it back in
// (false, where it serves as soon as it is healthy). It reports whether the
// state changed. Health checks never undo a drain.
func (b *Backend) SetDraining(v bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.draining.Swap(v) == v {
		return false
	}
	b.serving.Store(!v && b.healthy.Load())
	return true
}

// heard records a passed probe at t.
func (b *Backend) heard(t time.Time) { b.heardAt.Store(t.UnixNano()) }

// Transition is a change of a backend's availability.
type Transition int

// Transitions returned by the Record methods.
const (
	NoChange Transition = iota
	WentDown
	WentUp
)

func (t Transition) String() string {
	switch t {
	case WentDown:
		return "down"
	case WentUp:
		return "up"
	}
	return "unchanged"
}

// RecordProbe applies one active health check result: failThreshold
// consecutive failures take an available backend down, passThreshold
// consecutive successes bring an unavailable one back. One failed probe alone
// never ejects, so a backend does not flap on a single slow answer.
func (b *Backend) RecordProbe(err error, at time.Time, failThreshold, passThreshold int) Transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastCheck = at
	if err != nil {
		b.lastErr = err.Error()
		b.failures.Add(1)
		b.consecFail.Add(1)
		b.consecOK = 0
		if !b.healthy.Load() {
			return NoChange
		}
		b.probeFail++
		if b.probeFail >= failThreshold {
			b.probeFail = 0
			b.setHealthy(false)
			return WentDown
		}
		return NoChange
	}
	b.consecFail.Store(0)
	b.probeFail = 0
	if b.healthy.Load() {
		return NoChange
	}
	b.consecOK++
	if b.consecOK >= passThreshold {
		b.consecOK = 0
		b.setHealthy(true)
		return WentUp
	}
	return NoChange
}

// Eject records a failed connection seen on the request path and takes the
// backend out of rotation at once; only active probes bring it back.
func (b *Backend) Eject(err error) Transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastErr = err.Error()
	b.consecOK = 0
	b.probeFail = 0
	if b.healthy.Load() {
		b.setHealthy(false)
		return WentDown
	}
	return NoChange
}

// recordFailure counts a failed request that does not by itself say the
// backend is gone (a reset on a reused connection, a response timeout).
func (b *Backend) recordFailure(err error) {
	b.failures.Add(1)
	b.consecFail.Add(1)
	b.mu.Lock()
	b.lastErr = err.Error()
	b.mu.Unlock()
}

// recordSuccess ends a failure streak; the load avoids a contended store on
// every request when there is no streak.
func (b *Backend) recordSuccess() {
	if b.consecFail.Load() != 0 {
		b.consecFail.Store(0)
	}
}

// dueForProbe tells the health checker whether to probe now: every interval
// while healthy, every downInterval while down or in a failure streak.
func (b *Backend) dueForProbe(now time.Time, interval, downInterval time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	every := interval
	// A failed probe is confirmed (or cleared) within the short interval, so
	// a dead backend is down within about interval+downInterval, not 2 s.
	if !b.healthy.Load() || b.probeFail > 0 {
		every = downInterval
	}
	// The loop ticks every downInterval; half a tick of slack keeps a 1 s
	// period from slipping to 1.25 s on timer jitter.
	if !b.lastProbeAt.IsZero() && now.Sub(b.lastProbeAt) < every-downInterval/2 {
		return false
	}
	b.lastProbeAt = now
	return true
}

// Status is a consistent-enough snapshot for reporting.
func (b *Backend) Status() lbapi.BackendStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := lbapi.BackendStatus{
		Address:             b.addr,
		Name:                b.Name(),
		State:               b.State(),
		Healthy:             b.healthy.Load(),
		InFlight:            b.inFlight.Load(),
		Requests:            b.requests.Load(),
		Failures:            b.failures.Load(),
		ConsecutiveFailures: b.consecFail.Load(),
		LastError:           b.lastErr,
	}
	if !b.lastCheck.IsZero() {
		t := b.lastCheck.UTC()
		s.LastCheck = &t
	}
	return s
}
