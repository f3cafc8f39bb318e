package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// AdminBackend is one backend as the LB's admin API reports it.
type AdminBackend struct {
	Address  string `json:"address"`
	State    string `json:"state"` // healthy, down or draining
	InFlight int64  `json:"in_flight"`
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
}

// adminClient speaks the LB's admin API on its health port.
type adminClient struct {
	base string // http://127.0.0.1:4000
	http *http.Client
}

func newAdminClient(base string) *adminClient {
	return &adminClient{base: base, http: &http.Client{Timeout: 5 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true}}}
}

func (a *adminClient) do(ctx context.Context, method, path string, in any) ([]AdminBackend, *AdminBackend, error) {
	var body *bytes.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, nil, err
		}
		body = bytes.NewReader(b)
	} else {
		body = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return nil, nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("lb admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	var out struct {
		AdminBackend
		Backends []AdminBackend `json:"backends"`
		Error    string         `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, nil, fmt.Errorf("lb admin %s %s: %s: %w", method, path, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("lb admin %s %s: %s: %s", method, path, resp.Status, out.Error)
	}
	return out.Backends, &out.AdminBackend, nil
}

func (a *adminClient) list(ctx context.Context) ([]AdminBackend, error) {
	l, _, err := a.do(ctx, http.MethodGet, "/admin/backends", nil)
	return l, err
}

// set replaces the LB's backend set: new ones join once healthy, removed
// ones drain and then disappear.
func (a *adminClient) set(ctx context.Context, addrs []string) error {
	_, _, err := a.do(ctx, http.MethodPut, "/admin/backends", map[string][]string{"backends": addrs})
	return err
}

func (a *adminClient) drain(ctx context.Context, addr string) error {
	_, _, err := a.do(ctx, http.MethodPost, "/admin/backends/"+url.PathEscape(addr)+"/drain", nil)
	return err
}

func (a *adminClient) enable(ctx context.Context, addr string) error {
	_, _, err := a.do(ctx, http.MethodPost, "/admin/backends/"+url.PathEscape(addr)+"/enable", nil)
	return err
}

// await polls the backend list until ok holds for addr's entry (nil once
// the LB no longer lists it), or ctx ends. It returns the last entry seen.
func (a *adminClient) await(ctx context.Context, addr string, ok func(*AdminBackend) bool) (*AdminBackend, error) {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last *AdminBackend
	var lastErr error
	for {
		l, err := a.list(ctx)
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

func (a *adminClient) close() {
	if a != nil {
		a.http.CloseIdleConnections()
	}
}
