package supervisor

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
)

// healthReasons asks every running backend's /healthz (its ready URL) why
// it is degraded or unavailable, at once, and returns the answer per child
// in order; "" for a healthy one, a non-backend, or no answer. The LB's
// /health says only healthy or not; the backend says why (its store was
// replaced, the disk is full, another data set).
func healthReasons(ctx context.Context, children []*child) []string {
	out := make([]string, len(children))
	var wg sync.WaitGroup
	for i, c := range children {
		if c.spec.Addr == "" || c.spec.ReadyURL == "" {
			continue
		}
		if _, err := c.running(); err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = c.healthReason(ctx)
		}()
	}
	wg.Wait()
	return out
}

func (c *child) healthReason(ctx context.Context) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.spec.ReadyURL, nil)
	if err != nil {
		return ""
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
		Error  string `json:"error"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body) != nil {
		return ""
	}
	switch {
	case body.Reason != "":
		return body.Status + ": " + body.Reason
	case body.Error != "":
		return body.Status + ": " + body.Error
	}
	return ""
}
