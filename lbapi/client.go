package lbapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Client speaks to a balancer's health port.
type Client struct {
	base string // http://127.0.0.1:4000
	http *http.Client
}

// NewClient returns a client of the health port at base
// ("http://127.0.0.1:4000"). Each call is bounded by timeout as well as by
// its context.
func NewClient(base string, timeout time.Duration) *Client {
	return &Client{base: base, http: &http.Client{Timeout: timeout,
		Transport: &http.Transport{DisableKeepAlives: true}}}
}

// Close releases the client's connections. It is safe on a nil client.
func (c *Client) Close() {
	if c != nil {
		c.http.CloseIdleConnections()
	}
}

// Health reads GET /health. The answer is decoded whatever its status (503
// when no backend is in rotation); httpStatus is that status.
func (c *Client) Health(ctx context.Context) (h Health, httpStatus int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+PathHealth, nil)
	if err != nil {
		return h, 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return h, 0, fmt.Errorf("lb health: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return h, resp.StatusCode, fmt.Errorf("lb health: %s: %w", resp.Status, err)
	}
	return h, resp.StatusCode, nil
}

// List reads the backend set, removed backends still draining last.
func (c *Client) List(ctx context.Context) ([]AdminBackend, error) {
	var out AdminBackends
	err := c.do(ctx, http.MethodGet, PathAdminBackends, nil, &out)
	return out.Backends, err
}

// Set replaces the backend set, each given as "host:port" or
// "NAME=host:port": new ones join once healthy, removed ones drain and then
// disappear.
func (c *Client) Set(ctx context.Context, backends []string) error {
	refs := make([]BackendRef, len(backends))
	for i, b := range backends {
		refs[i] = SplitBackendRef(b)
	}
	return c.do(ctx, http.MethodPut, PathAdminBackends, SetBackends{Backends: refs}, &AdminBackends{})
}

// Drain stops new requests to addr; in-flight ones finish.
func (c *Client) Drain(ctx context.Context, addr string) error {
	return c.do(ctx, http.MethodPost, actionPath(addr, "drain"), nil, &AdminBackend{})
}

// Enable puts addr back in rotation once its health checks pass.
func (c *Client) Enable(ctx context.Context, addr string) error {
	return c.do(ctx, http.MethodPost, actionPath(addr, "enable"), nil, &AdminBackend{})
}

func actionPath(addr, action string) string {
	return PathAdminBackends + "/" + url.PathEscape(addr) + "/" + action
}

// Await polls the backend set until ok holds for addr's entry (nil once the
// balancer no longer lists it), or ctx ends. It returns the last entry seen.
func (c *Client) Await(ctx context.Context, addr string, ok func(*AdminBackend) bool) (*AdminBackend, error) {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last *AdminBackend
	var lastErr error
	for {
		l, err := c.List(ctx)
		if err == nil {
			last, lastErr = nil, nil
			for i := range l {
				if l[i].Address == addr {
					last = &l[i]
				}
			}
			if ok(last) {
				return last, nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return last, lastErr
			}
			return last, ctx.Err()
		case <-tick.C:
		}
	}
}

// Healthy is an Await condition: the backend is listed and in rotation.
func Healthy(b *AdminBackend) bool { return b != nil && b.State == StateHealthy }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("lb admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e Error
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("lb admin %s %s: %s: %s", method, path, resp.Status, e.Error)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("lb admin %s %s: %s: %w", method, path, resp.Status, err)
	}
	return nil
}
