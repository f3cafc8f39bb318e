package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/posterctl/posterctl/lbapi"
)

// Config is everything the load balancer needs; a zero field means its
// default, filled in by SetDefaults, the one place defaults live.
type Config struct {
	// Listen and HealthListen are host:port; an empty host means every
	// interface. Port 0 picks a free port (tests).
	Listen       string
	HealthListen string
	// ListenFD and HealthListenFD, when not 0, are inherited listening
	// sockets to serve on instead of binding Listen and HealthListen, which
	// then only name the ports in logs.
	ListenFD       int
	HealthListenFD int
	// Backends as given by the user: host:port or http://host:port, either
	// one after NAME= to give the backend a name.
	Backends []string

	// Trust (see trust.go). ProxySecret, when set, goes to every backend in
	// the fwdauth.Header header. AdminToken is the bearer token the admin
	// API wants; empty disables the admin API. TrustedProxies are the peers
	// whose X-Forwarded-Proto is passed on.
	ProxySecret    string
	AdminToken     string
	TrustedProxies []netip.Prefix

	DialTimeout           time.Duration // 1 s
	ResponseHeaderTimeout time.Duration // 30 s: after that, 504
	// IdleConnTimeout stays below the backend's own idle timeout (120 s), so
	// the proxy never reuses a connection the backend is closing.
	IdleConnTimeout     time.Duration // 90 s
	MaxIdleConnsPerHost int           // 512
	MaxReplayBody       int64         // 1 MiB: larger bodies stream, unreplayable

	HealthPath          string        // /healthz
	HealthInterval      time.Duration // 1 s
	HealthDownInterval  time.Duration // 250 ms
	HealthTimeout       time.Duration // 1 s
	HealthFailThreshold int           // 2
	HealthPassThreshold int           // 2

	// Against slow or abusive clients.
	ReadHeaderTimeout time.Duration // 10 s
	ClientIdleTimeout time.Duration // 120 s
	MaxHeaderBytes    int           // 64 KiB
	// BodyIdleTimeout cuts a request body, of any size, that sends no byte
	// for this long: 408, and the backend's connection is closed.
	BodyIdleTimeout time.Duration // 10 s, as ReadHeaderTimeout
	// MaxConns caps the open client connections, MaxConnsPerClient those
	// of one client address (negative: no per-client cap). Over either, a
	// new connection gets 503 and is closed (see limits.go).
	MaxConns          int // 10000
	MaxConnsPerClient int // 256

	RetryAfter time.Duration // 1 s, sent with 503
	// Answers slower than this are checked for a client that went away
	// before they are written (faster ones: the write tells).
	ClientGoneCheckAfter time.Duration // 50 ms
}

// SetDefaults fills every zero field with its default.
func (c *Config) SetDefaults() {
	setDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	setInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	setDur(&c.DialTimeout, time.Second)
	setDur(&c.ResponseHeaderTimeout, 30*time.Second)
	setDur(&c.IdleConnTimeout, 90*time.Second)
	setInt(&c.MaxIdleConnsPerHost, 512)
	if c.MaxReplayBody == 0 {
		c.MaxReplayBody = 1 << 20
	}
	if c.HealthPath == "" {
		c.HealthPath = "/healthz"
	}
	setDur(&c.HealthInterval, time.Second)
	setDur(&c.HealthDownInterval, 250*time.Millisecond)
	setDur(&c.HealthTimeout, time.Second)
	setInt(&c.HealthFailThreshold, 2)
	setInt(&c.HealthPassThreshold, 2)
	setDur(&c.ReadHeaderTimeout, 10*time.Second)
	setDur(&c.ClientIdleTimeout, 120*time.Second)
	setInt(&c.MaxHeaderBytes, 64<<10)
	setDur(&c.BodyIdleTimeout, c.ReadHeaderTimeout)
	setInt(&c.MaxConns, 10000)
	setInt(&c.MaxConnsPerClient, 256)
	setDur(&c.RetryAfter, time.Second)
	setDur(&c.ClientGoneCheckAfter, 50*time.Millisecond)
}

// Validate checks the configuration and returns the backends, their
// addresses normalised to host:port. The first problem is reported, as one
// line a user can act on.
func (c *Config) Validate() ([]lbapi.BackendRef, error) {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen address %q: want host:port", c.Listen))
	}
	if _, _, err := net.SplitHostPort(c.HealthListen); err != nil {
		errs = append(errs, fmt.Errorf("health listen address %q: want host:port", c.HealthListen))
	}
	if len(c.Backends) == 0 {
		errs = append(errs, errors.New("no backend given: pass --backend host:port at least once"))
	}
	refs := make([]lbapi.BackendRef, 0, len(c.Backends))
	for _, raw := range c.Backends {
		refs = append(refs, lbapi.SplitBackendRef(raw))
	}
	refs, err := checkSet(refs)
	if err != nil {
		errs = append(errs, err)
	}
	if err := c.validateTrust(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("max conns %d: want at least 1", c.MaxConns))
	}
	if c.HealthFailThreshold < 1 || c.HealthPassThreshold < 1 {
		errs = append(errs, errors.New("health thresholds must be at least 1"))
	}
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return refs, nil
}
