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
// does not delay the others; Close stops and waits for all of them.
type HealthChecker struct {
	pool  []*Backend
	cfg   *Config
	probe ProbeFunc
	// onChange is called once per state change, to log it and count it.
	onChange  func(b *Backend, t Transition, err error, via string)
	closeIdle func()

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewHealthChecker prepares a checker; probe nil means GET /healthz over HTTP.
// onChange, if set, is called once per state change.
func NewHealthChecker(cfg *Config, pool []*Backend, probe ProbeFunc, onChange func(*Backend, Transition, error, string)) *HealthChecker {
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
	return &HealthChecker{pool: pool, cfg: cfg, probe: probe, onChange: onChange, closeIdle: closeIdle, ctx: ctx, cancel: cancel}
}

// Start launches the probe loops.
func (h *HealthChecker) Start() {
	for _, b := range h.pool {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.loop(b)
		}()
	}
}

// Close stops the loops and waits for them; it is safe to call twice.
func (h *HealthChecker) Close() {
	h.cancel()
	h.wg.Wait()
	h.closeIdle()
}

// loop ticks at the short down interval and lets dueForProbe decide, so a
// backend ejected by the request path is re-probed within 250 ms instead of
// waiting out the rest of a 1 s period.
func (h *HealthChecker) loop(b *Backend) {
	tick := time.NewTicker(h.cfg.HealthDownInterval)
	defer tick.Stop()
	for {
		if b.dueForProbe(time.Now(), h.cfg.HealthInterval, h.cfg.HealthDownInterval) {
			h.check(b)
		}
		select {
		case <-h.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (h *HealthChecker) check(b *Backend) {
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.HealthTimeout)
	err := h.probe(ctx, b)
	cancel()
	if h.ctx.Err() != nil {
		return // shutting down: the failure is ours, not the backend's
	}
	if t := b.RecordProbe(err, time.Now(), h.cfg.HealthFailThreshold, h.cfg.HealthPassThreshold); t != NoChange {
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
