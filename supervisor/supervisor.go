// Package supervisor starts a cluster's child processes in order, keeps them
// running, restarts the ones that crash, stops them gracefully, and serves
// status and down on a unix socket in the run dir.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/posterctl/posterctl/lbapi"
	"github.com/rs/zerolog"
	"github.com/shirou/gopsutil/v3/process"
)

// Config is what a Supervisor runs.
type Config struct {
	Specs        []Spec // started by ascending Stage, stopped in reverse
	RunDir       string
	Restart      RestartPolicy
	ReadyTimeout time.Duration // per start of a child
	Sink         LineSink      // receives the children's output
	// Shown by status. HealthURL is the LB's /health, whose per-backend
	// health status reports; it is optional.
	URL       string
	HealthURL string
	DataDir   string
	// Store is the backends' store as status shows it: a SQLite path, or a
	// PostgreSQL URL already redacted by the caller (never a password).
	Store string
	// Remote backends run elsewhere; the LB balances over them too, and
	// status lists them with their health from the LB, without a pid.
	Remote []string
	// AdminURL is the base of the LB's admin API ("http://127.0.0.1:4000"),
	// through which restart and scale drain and add backends; empty
	// without an LB.
	AdminURL string
	// LBArgs gives the LB's arguments for a backend set (host:port, local
	// ones first), so an LB started after a scale has the current set.
	LBArgs func(backends []string) []string
	// NewBackend gives the spec of one more backend called name on port,
	// for scale; nil means the cluster cannot scale.
	NewBackend func(name string, port int) Spec
	BasePort   int // scale's first port when no local backend is left
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if len(c.Specs) == 0 {
		return errors.New("nothing to run")
	}
	if c.RunDir == "" {
		return errors.New("run dir is empty")
	}
	if c.ReadyTimeout <= 0 {
		return fmt.Errorf("ready timeout must be positive, got %v", c.ReadyTimeout)
	}
	if c.Sink == nil {
		return errors.New("no sink for child output")
	}
	names := map[string]bool{}
	for _, s := range c.Specs {
		if s.Name == "" || s.Path == "" {
			return fmt.Errorf("child %q: name and path are required", s.Name)
		}
		if names[s.Name] {
			return fmt.Errorf("child name %q used twice", s.Name)
		}
		names[s.Name] = true
	}
	if c.HealthURL != "" && !strings.HasSuffix(c.HealthURL, lbapi.PathHealth) {
		return fmt.Errorf("health URL %q: want the LB's %s", c.HealthURL, lbapi.PathHealth)
	}
	return c.Restart.Validate()
}

// Supervisor runs the children of one cluster.
type Supervisor struct {
	cfg     Config
	log     zerolog.Logger
	started time.Time
	self    Identity

	lock     *runLock
	control  *controlServer
	sp       *spawner
	mu       sync.Mutex    // guards children, which Start fills while status may read
	children []*child      // in Specs order
	health   *lbapi.Client // the LB's /health; nil without an LB

	ctx    context.Context // ends at Close; stops the sampler
	cancel context.CancelFunc
	wg     sync.WaitGroup

	killCtx  context.Context // cancelled by Kill: cuts every grace period short
	kill     context.CancelFunc
	stopOnce sync.Once
	stopped  chan struct{}
	stopping bool // under mu: no child is added once the stop began

	files    [][]*os.File    // Listen sockets, by child in Specs order; closed by Close
	opMu     sync.Mutex      // one restart or scale at a time
	opCtx    context.Context // ends when the stop begins: restart and scale give up
	opCancel context.CancelFunc
}

// New checks cfg; nothing starts before Start.
func New(cfg Config, log zerolog.Logger) (*Supervisor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Stages run in order of Stage; within a stage, in the order given.
	cfg.Specs = slices.Clone(cfg.Specs)
	slices.SortStableFunc(cfg.Specs, func(a, b Spec) int { return a.Stage - b.Stage })
	self, err := Identify(context.Background(), os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("identify self: %w", err)
	}
	var health *lbapi.Client
	if cfg.HealthURL != "" {
		health = lbapi.NewClient(strings.TrimSuffix(cfg.HealthURL, lbapi.PathHealth), 500*time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	killCtx, kill := context.WithCancel(context.Background())
	opCtx, opCancel := context.WithCancel(context.Background())
	return &Supervisor{
		opCtx:    opCtx,
		opCancel: opCancel,
		cfg:      cfg,
		health:   health,
		log:      log,
		self:     self,
		started:  time.Now(),
		ctx:      ctx,
		cancel:   cancel,
		killCtx:  killCtx,
		kill:     kill,
		stopped:  make(chan struct{}),
	}, nil
}

// Start claims the run dir, checks every port, opens the control socket,
// then starts the children stage by stage, each stage only once the previous
// one is ready. On error nothing is left running and Close still must be
// called. Cancelling ctx aborts the start-up.
func (s *Supervisor) Start(ctx context.Context) error {
	if err := s.claimRunDir(ctx); err != nil {
		return err
	}
	var err error
	var ports []int
	for _, sp := range s.cfg.Specs {
		if len(sp.Listen) > 0 {
			continue // bound below, which checks them
		}
		if sp.Port > 0 {
			ports = append(ports, sp.Port)
		}
		ports = append(ports, sp.Extra...)
	}
	if err := CheckPorts(ctx, ports); err != nil {
		return fmt.Errorf("check ports: %w", err)
	}
	for _, sp := range s.cfg.Specs {
		files, err := bindListeners(ctx, sp.Listen)
		if err != nil {
			return fmt.Errorf("check ports: %w", err)
		}
		s.files = append(s.files, files)
	}
	s.sp = newSpawner()
	s.mu.Lock()
	seq := 0
	for i, sp := range s.cfg.Specs {
		c := newChild(sp, s.cfg.Restart, s.cfg.ReadyTimeout, s.sp, s.cfg.Sink, s.files[i], s.log)
		if sp.Addr != "" {
			seq++
			c.seq = seq
		}
		s.children = append(s.children, c)
	}
	s.mu.Unlock()
	sock := filepath.Join(s.cfg.RunDir, SocketName)
	if s.control, err = openControl(sock, s); err != nil {
		return err
	}
	if err := writePidFile(s.cfg.RunDir, s.self); err != nil {
		return err
	}
	s.wg.Add(1)
	go s.sampleLoop()
	for _, stage := range s.stages() {
		for _, c := range stage {
			c.start()
		}
		if err := s.awaitStage(ctx, stage); err != nil {
			s.Kill()
			<-s.stopped
			return err
		}
	}
	return nil
}

// claimRunDir takes the run dir's lock and clears a stale socket. A socket
// that answers, or a lock held by someone else, means a live cluster.
func (s *Supervisor) claimRunDir(ctx context.Context) error {
	if err := PrepareRunDir(s.cfg.RunDir); err != nil {
		return err
	}
	running := func() error {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		cl := NewClient(s.cfg.RunDir)
		defer cl.CloseIdleConnections()
		if st, err := cl.Status(cctx); err == nil {
			return &AlreadyRunningError{Pid: st.Supervisor.Pid}
		}
		return nil
	}
	lock, err := lockRunDir(s.cfg.RunDir)
	if errors.Is(err, errLocked) {
		if err := running(); err != nil {
			return err
		}
		id, _ := ReadPidFile(s.cfg.RunDir)
		return &AlreadyRunningError{Pid: id.Pid}
	}
	if err != nil {
		return err
	}
	s.lock = lock
	if err := running(); err != nil {
		return err
	}
	sock := filepath.Join(s.cfg.RunDir, SocketName)
	if _, err := os.Stat(sock); err == nil {
		s.log.Warn().Str("socket", sock).Msg("removing stale control socket left by a supervisor that died")
		if err := os.Remove(sock); err != nil {
			return fmt.Errorf("remove stale socket: %w", err)
		}
	}
	return nil
}

func (s *Supervisor) childList() []*child {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.children
}

func (s *Supervisor) stages() [][]*child {
	var out [][]*child
	children := s.childList()
	for i, c := range children {
		if i == 0 || c.spec.Stage != children[i-1].spec.Stage {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], c)
	}
	return out
}

// StartError says which child kept the cluster from becoming ready, with its
// last lines of output.
type StartError struct {
	Child  string
	Reason string
	Tail   string
}

func (e *StartError) Error() string {
	return fmt.Sprintf("%s did not start: %s", e.Child, e.Reason)
}

// awaitStage waits until every child of stage is ready, or one is fatal.
func (s *Supervisor) awaitStage(ctx context.Context, stage []*child) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ready := 0
		for _, c := range stage {
			select {
			case <-c.ready:
				ready++
			case <-c.fatal:
				c.mu.Lock()
				reason := c.failure
				c.mu.Unlock()
				return &StartError{Child: c.spec.Name, Reason: reason, Tail: c.tail.String()}
			default:
			}
		}
		if ready == len(stage) {
			return nil
		}
		select {
		case <-tick.C:
		case <-s.stopped:
			return errors.New("stopped during start-up")
		case <-ctx.Done():
			return fmt.Errorf("start-up interrupted: %w", ctx.Err())
		}
	}
}

func (s *Supervisor) sampleLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-tick.C:
			for _, c := range s.childList() {
				c.sampleUsage(s.ctx, now)
			}
		}
	}
}

// Stop begins the graceful stop: no more restarts, SIGTERM to the last stage
// (the LB) and wait for it, then the stage before, and so on; whatever still
// runs when grace has passed gets SIGKILL. It returns at once; Stopped says
// when it is over. Calls after the first do nothing.
func (s *Supervisor) Stop(grace time.Duration) {
	s.stopOnce.Do(func() {
		s.log.Info().Dur("grace", grace).Msg("stopping")
		s.mu.Lock()
		s.stopping = true
		s.mu.Unlock()
		s.opCancel()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(s.stopped)
			ctx, cancel := context.WithTimeout(s.killCtx, grace)
			defer cancel()
			st := s.stages()
			for i := len(st) - 1; i >= 0; i-- {
				var wg sync.WaitGroup
				for _, c := range st[i] {
					wg.Add(1)
					go func() {
						defer wg.Done()
						c.Stop(ctx)
					}()
				}
				wg.Wait()
			}
		}()
	})
}

// Kill stops every child at once with SIGKILL to its process group, also
// cutting short a graceful stop already under way.
func (s *Supervisor) Kill() {
	s.kill()
	s.Stop(0)
}

// Stopped is closed once every child is gone after Stop or Kill.
func (s *Supervisor) Stopped() <-chan struct{} { return s.stopped }

// Close stops everything still running (at once), removes the socket and pid
// file, and releases the run dir.
func (s *Supervisor) Close() {
	if s.sp != nil {
		s.Kill()
		<-s.stopped
	}
	s.cancel()
	s.wg.Wait()
	if s.control != nil {
		s.control.Close()
	}
	if s.lock != nil {
		os.Remove(filepath.Join(s.cfg.RunDir, PidName))
		s.lock.release()
	}
	if s.sp != nil {
		s.sp.Close()
	}
	for _, f := range s.files {
		closeFiles(f)
	}
	s.health.Close()
	s.kill()
	s.opCancel()
}

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

// ChildNames lists the children in start order.
func (c Config) ChildNames() []string {
	var out []string
	for _, s := range c.Specs {
		out = append(out, s.Name)
	}
	return slices.Clip(out)
}
