package supervisor

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/posterctl/posterctl/lbapi"
	"github.com/shirou/gopsutil/v3/process"
)

// Status is what `posterctl status` shows.
type Status struct {
	Supervisor SupervisorStatus `json:"supervisor"`
	Children   []ChildStatus    `json:"children"`
}

// SupervisorStatus is the header of status.
type SupervisorStatus struct {
	Pid        int     `json:"pid"`
	CreateTime int64   `json:"create_time_ms"`
	UptimeS    float64 `json:"uptime_s"`
	RunDir     string  `json:"run_dir"`
	DataDir    string  `json:"data_dir,omitempty"`
	URL        string  `json:"url,omitempty"`
	HealthURL  string  `json:"health_url,omitempty"`
	RSSBytes   uint64  `json:"rss_bytes"`
	Stopping   bool    `json:"stopping"`
	Store      string  `json:"store,omitempty"`
}

// ChildStatus is one row of status.
type ChildStatus struct {
	Name       string     `json:"name"`
	Pid        int        `json:"pid"`
	State      State      `json:"state"`
	Health     string     `json:"health"`
	Port       int        `json:"port"`
	Restarts   int        `json:"restarts"`
	UptimeS    float64    `json:"uptime_s"`
	CPUPercent float64    `json:"cpu_percent"`
	RSSBytes   uint64     `json:"rss_bytes"`
	LastExit   string     `json:"last_exit"`
	NextRetry  *time.Time `json:"next_retry"`
	CreateTime int64      `json:"create_time_ms"`
	Address    string     `json:"address,omitempty"` // as the LB knows it
	Remote     bool       `json:"remote,omitempty"`
	// LastError says why the last restart of this child failed, and that
	// its address is left out of the LB's rotation until one succeeds.
	LastError string `json:"last_error,omitempty"`
	// Reason says why it is fatal, in a crash loop, or (a backend) not
	// plainly healthy: its /healthz "reason" or "error".
	Reason string `json:"reason,omitempty"`
}

// Status reports every child, with health taken from the LB's /health.
func (s *Supervisor) Status(ctx context.Context) Status {
	now := time.Now()
	st := Status{Supervisor: SupervisorStatus{
		Pid:        s.self.Pid,
		CreateTime: s.self.CreateTime,
		UptimeS:    now.Sub(s.started).Seconds(),
		RunDir:     s.cfg.RunDir,
		DataDir:    s.cfg.DataDir,
		URL:        s.cfg.URL,
		HealthURL:  s.cfg.HealthURL,
		Store:      s.cfg.Store,
	}}
	if p, err := process.NewProcessWithContext(ctx, int32(s.self.Pid)); err == nil {
		if m, err := p.MemoryInfoWithContext(ctx); err == nil {
			st.Supervisor.RSSBytes = m.RSS
		}
	}
	select {
	case <-s.stopped:
		st.Supervisor.Stopping = true
	default:
		st.Supervisor.Stopping = s.killCtx.Err() != nil
	}
	lbHealth, backends := s.fetchHealth(ctx)
	children := s.childList()
	reasons := healthReasons(ctx, children)
	var probed []string
	if s.health == nil {
		// No LB to ask (up --no-lb): each child's own readiness check says.
		probed = probeAll(ctx, children)
	}
	for i, c := range children {
		if c.unsampled() {
			// Started since the sampler's last tick: RSS now, CPU % next tick.
			c.sampleUsage(ctx, now)
		}
		cs := c.status(now)
		switch {
		case cs.State != Running:
		case probed != nil:
			cs.Health = probed[i]
		case c.spec.ReadyURL != "" && c.spec.ReadyURL == s.cfg.HealthURL:
			cs.Health = lbHealth
		default:
			if h, ok := backends[c.spec.Addr]; ok {
				cs.Health = h
			}
		}
		if cs.Reason == "" {
			cs.Reason = reasons[i]
		}
		st.Children = append(st.Children, cs)
	}
	for _, addr := range s.cfg.Remote {
		cs := ChildStatus{Name: addr, State: Remote, Health: healthUnknown, Port: portOf(addr), Address: addr, Remote: true}
		if h, ok := backends[addr]; ok {
			cs.Health = h
		} else if s.health != nil && lbHealth == healthUnreachable {
			cs.Health = healthUnreachable
		}
		st.Children = append(st.Children, cs)
	}
	return st
}

// Health values of status besides the LB's state names (lbapi.State*).
const (
	healthUnknown     = "unknown"     // nobody to ask, or not running
	healthUnhealthy   = "unhealthy"   // its check failed
	healthUnreachable = "unreachable" // the LB did not answer
)

func healthOf(ok bool) string {
	if ok {
		return lbapi.StateHealthy
	}
	return healthUnhealthy
}

// probeAll runs every running child's readiness check at once and returns
// its health per child, in order.
func probeAll(ctx context.Context, children []*child) []string {
	out := make([]string, len(children))
	var wg sync.WaitGroup
	for i, c := range children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = healthOf(c.probe(ctx))
		}()
	}
	wg.Wait()
	return out
}

// fetchHealth reads the LB's /health: the LB's own verdict, and each
// backend's health keyed by its address (host:port).
func (s *Supervisor) fetchHealth(ctx context.Context) (string, map[string]string) {
	if s.health == nil {
		return healthUnknown, nil
	}
	h, code, err := s.health.Health(ctx)
	switch {
	case code == 0 && err != nil:
		return healthUnreachable, nil
	case err != nil:
		return healthOf(code == http.StatusOK), nil
	}
	out := map[string]string{}
	for _, b := range h.Backends {
		st := b.State
		if st == "" { // an LB too old to report it
			st = healthOf(b.Healthy)
		}
		out[normalAddr(b.Address)] = st
	}
	return healthOf(code == http.StatusOK), out
}

// normalAddr turns "http://host:port" into "host:port".
func normalAddr(addr string) string {
	if _, rest, ok := strings.Cut(addr, "://"); ok {
		return strings.TrimSuffix(rest, "/")
	}
	return addr
}

// portOf accepts "host:port" and "http://host:port".
func portOf(addr string) int {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(u.Port())
	return p
}

func (c *child) status(now time.Time) ChildStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := ChildStatus{
		Name:       c.spec.Name,
		State:      c.state,
		Health:     healthUnknown,
		Port:       c.spec.Port,
		Restarts:   c.restarts,
		CPUPercent: c.usage.CPUPercent,
		RSSBytes:   c.usage.RSS,
		LastExit:   c.lastExit,
		Address:    c.spec.Addr,
		LastError:  c.lastError,
	}
	if c.proc != nil && (c.state == Starting || c.state == Running || c.state == Stopping) {
		st.Pid = c.proc.Pid()
		st.CreateTime = c.proc.Identity().CreateTime
		st.UptimeS = now.Sub(c.proc.Started()).Seconds()
	}
	if c.state == Backoff {
		t := c.nextRetry
		st.NextRetry = &t
	}
	switch {
	case c.state == Fatal:
		st.Reason = c.failure
	case c.loop != "":
		st.Reason = c.loop
	}
	return st
}
