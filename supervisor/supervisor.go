// Package supervisor starts a cluster's child processes in order, keeps them
// running, restarts the ones that crash, stops them gracefully, and serves
// status and down on a unix socket in the run dir.
//
// The core (this file, child.go, process.go) owns the children; status.go
// and inspect.go only look at them; controlserver.go and controlclient.go
// are the two ends of the socket; rolling.go and scale.go change the
// cluster while it serves, speaking to the LB through lbapi. How status is
// shown to a person is cmd/posterctl's business.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/posterctl/posterctl/lbapi"
	"github.com/rs/zerolog"
)

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
	// adminToken is the LB admin API's bearer token, read from
	// cfg.AdminTokenFile at Start.
	adminToken string

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
	if err := s.ensureSecrets(); err != nil {
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
		if sp.FrontDoor && len(s.files[i]) > 0 {
			c.standin = newStandin(s.files[i], portOf(s.cfg.HealthURL), c.untilRetry, s.log.With().Str("child", sp.Name).Logger())
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
	if orphanWarning != "" {
		s.log.Warn().Msg(orphanWarning)
	}
	s.wg.Add(1)
	go s.sampleLoop()
	// Until the LB first serves, its held sockets get the stand-in's 503.
	for _, c := range s.childList() {
		c.standin.start()
	}
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
	type outcome struct {
		c     *child
		fatal bool
	}
	out := make(chan outcome, len(stage))
	quit := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(quit)
		wg.Wait()
	}()
	for _, c := range stage {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-c.ready:
				out <- outcome{c: c}
			case <-c.fatal:
				out <- outcome{c: c, fatal: true}
			case <-quit:
			}
		}()
	}
	for range stage {
		select {
		case o := <-out:
			if o.fatal {
				o.c.mu.Lock()
				reason := o.c.failure
				o.c.mu.Unlock()
				return &StartError{Child: o.c.spec.Name, Reason: reason, Tail: o.c.tail.String()}
			}
		case <-s.stopped:
			return errors.New("stopped during start-up")
		case <-ctx.Done():
			return fmt.Errorf("start-up interrupted: %w", ctx.Err())
		}
	}
	return nil
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
		s.log.Info().Stringer("grace", grace).Msg("stopping")
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
	for _, c := range s.childList() {
		c.standin.stop()
	}
	for _, f := range s.files {
		closeFiles(f)
	}
	closeChildFiles(s.childList())
	s.health.Close()
	s.kill()
	s.opCancel()
}
