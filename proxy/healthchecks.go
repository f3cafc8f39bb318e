package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// ProbeFunc checks one backend once; a nil error means healthy.
type ProbeFunc func(ctx context.Context, b *Backend) error

// HealthChecker probes every backend in the background, never on the request
// path. It owns one goroutine per backend, so a hung backend's 1 s timeout
// does not delay the others; Remove stops one, Close stops and waits for all.
type HealthChecker struct {
	backends []*Backend // probed from Start on
	cfg      *Config
	probe    ProbeFunc
	// onChange is called once per state change, to log it and count it.
	onChange  func(b *Backend, t Transition, err error, via string)
	closeIdle func()

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	loops   map[*Backend]context.CancelFunc
	started bool
}

// NewHealthChecker prepares a checker; probe nil means GET /healthz over HTTP.
// onChange, if set, is called once per state change.
func NewHealthChecker(cfg *Config, backends []*Backend, probe ProbeFunc, onChange func(*Backend, Transition, error, string)) *HealthChecker {
	closeIdle := func() {}
	if probe == nil {
		var tr *http.Transport
		probe, tr = newHTTPProbe(cfg)
		closeIdle = tr.CloseIdleConnections
	}
	if onChange == nil {
		onChange = func(*Backend, Transition, error, string) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &HealthChecker{backends: backends, cfg: cfg, probe: probe, onChange: onChange, closeIdle: closeIdle,
		ctx: ctx, cancel: cancel, loops: make(map[*Backend]context.CancelFunc)}
}

// Start launches the probe loops of the backends given to NewHealthChecker.
func (h *HealthChecker) Start() {
	h.mu.Lock()
	h.started = true
	h.mu.Unlock()
	for _, b := range h.backends {
		h.Add(b)
	}
}

// Add starts probing b (a backend that joined at run time); the first probe
// is at once. Before Start it only queues b; after Close, or for a backend
// already probed, it does nothing.
func (h *HealthChecker) Add(b *Backend) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx.Err() != nil || h.loops[b] != nil {
		return
	}
	if !h.started {
		h.backends = append(h.backends, b)
		return
	}
	ctx, cancel := context.WithCancel(h.ctx)
	h.loops[b] = cancel
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.loop(ctx, b)
	}()
}

// Remove stops probing b, without waiting for a probe under way: its result
// is dropped.
func (h *HealthChecker) Remove(b *Backend) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cancel := h.loops[b]; cancel != nil {
		cancel()
		delete(h.loops, b)
	}
}

// Close stops the loops and waits for them; it is safe to call twice.
func (h *HealthChecker) Close() {
	h.mu.Lock()
	h.cancel()
	h.mu.Unlock()
	h.wg.Wait()
	h.closeIdle()
}

// loop ticks at the short down interval and lets dueForProbe decide, so a
// backend ejected by the request path is re-probed within 250 ms instead of
// waiting out the rest of a 1 s period.
func (h *HealthChecker) loop(ctx context.Context, b *Backend) {
	tick := time.NewTicker(h.cfg.HealthDownInterval)
	defer tick.Stop()
	for {
		if b.dueForProbe(time.Now(), h.cfg.HealthInterval, h.cfg.HealthDownInterval) {
			h.check(ctx, b)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (h *HealthChecker) check(loopCtx context.Context, b *Backend) {
	ctx, cancel := context.WithTimeout(loopCtx, h.cfg.HealthTimeout)
	err := h.probe(ctx, b)
	cancel()
	if loopCtx.Err() != nil {
		return // stopping: the failure is ours, not the backend's
	}
	now := time.Now()
	if err == nil {
		b.heard(now)
	}
	if t := b.RecordProbe(err, now, h.cfg.HealthFailThreshold, h.cfg.HealthPassThreshold); t != NoChange {
		h.onChange(b, t, err, "probe")
	}
}

// newHTTPProbe probes GET /healthz on its own transport, so health checks
// neither take idle connections from the proxy nor queue behind its traffic.
func newHTTPProbe(cfg *Config) (ProbeFunc, *http.Transport) {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: cfg.DialTimeout}).DialContext,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     cfg.IdleConnTimeout,
		DisableCompression:  true,
	}
	client := &http.Client{
		Transport: tr,
		// A redirect from /healthz is not health.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return func(ctx context.Context, b *Backend) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.addr+cfg.HealthPath, nil)
		if err != nil {
			return fmt.Errorf("health request: %w", err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("health check: %w", err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health check: GET %s: status %d", cfg.HealthPath, resp.StatusCode)
		}
		return nil
	}, tr
}
