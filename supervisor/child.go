package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// State is where a child is in its life.
type State string

// The states status shows.
const (
	Starting State = "starting" // started, not yet answering its readiness check
	Running  State = "running"
	Backoff  State = "backoff" // crashed, waiting to be restarted
	Stopping State = "stopping"
	Exited   State = "exited" // stopped on purpose
	Fatal    State = "fatal"  // crashed too often; left down
	Remote   State = "remote" // runs on another machine; not ours to start or stop
)

var errStopping = errors.New("stopping")

// child keeps one Spec running: it starts a Process, waits until it is ready,
// and restarts it after a crash according to the restart policy. Its run loop
// is its only goroutine; Stop cancels it and waits.
type child struct {
	spec         Spec // fixed, but for Args: see args
	policy       RestartPolicy
	readyTimeout time.Duration
	sp           *spawner
	sink         LineSink
	tail         *tail
	log          zerolog.Logger
	http         *http.Client
	files        []*os.File    // the spec's Listen sockets, owned by the supervisor
	seq          int           // a backend's number (backend-<seq>), for scale
	standin      *standin      // answers on files while no process does; nil but for the LB
	kick         chan struct{} // cuts a backoff short (restart of a crash-looping LB)

	opMu sync.Mutex // one replace or handover at a time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	readyOnce sync.Once
	fatalOnce sync.Once     // a revived child may be given up again
	ready     chan struct{} // closed the first time the child is ready
	fatal     chan struct{} // closed when the child is given up

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced at every change of state or proc
	args      []string      // the LB's arguments follow the backend set
	state     State
	proc      *Process
	replaced  *Process // stopped by replace: its exit is no crash
	stopping  bool
	restarts  int
	lastExit  string
	nextRetry time.Time
	failure   string // why it went fatal
	lastError string // why the last restart or scale of it failed; see setLastError
	loop      string // why it is in a crash loop it is never given up for
	sampler   usageSampler
	usage     usage
}

func newChild(spec Spec, policy RestartPolicy, readyTimeout time.Duration, sp *spawner, sink LineSink, files []*os.File, log zerolog.Logger) *child {
	ctx, cancel := context.WithCancel(context.Background())
	t := newTail(20)
	return &child{
		spec:         spec,
		args:         spec.Args,
		files:        files,
		policy:       policy,
		readyTimeout: readyTimeout,
		sp:           sp,
		tail:         t,
		sink:         teeSink{t, sink},
		log:          log.With().Str("child", spec.Name).Logger(),
		// No keep-alive: a readiness probe must not leave a pooled
		// connection (and its goroutines) behind.
		http:    &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
		ctx:     ctx,
		cancel:  cancel,
		ready:   make(chan struct{}),
		kick:    make(chan struct{}, 1),
		fatal:   make(chan struct{}),
		state:   Starting,
		changed: make(chan struct{}),
	}
}

// changedLocked wakes whoever waits for the child's next change of state or
// process, and arms the next notification. Call it with c.mu held, after
// the change.
func (c *child) changedLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *child) start() {
	c.wg.Add(1)
	go c.run()
}

func (c *child) run() {
	defer c.wg.Done()
	tr := newRestartTracker(c.policy)
	var same sameFailures
	first := true
	for {
		// The stand-in stops accepting before the next generation starts,
		// so the two never compete for a connection.
		c.standin.stop()
		p, err := c.attempt(first)
		first = false
		if errors.Is(err, errStopping) {
			return
		}
		var uptime time.Duration
		exit := ""
		if err != nil {
			exit = err.Error()
			same.observe(false, exit)
			c.log.Error().Err(err).Msg("start failed")
		} else {
			ready := c.awaitReady(p)
			if !c.watch(&p) {
				return // Stop owns the process from here
			}
			<-p.readerDone // its last line, which says why, is in the tail
			same.observe(ready, c.tail.last())
			c.mu.Lock()
			replaced := c.replaced == p
			if replaced {
				c.replaced = nil
			}
			c.mu.Unlock()
			if replaced {
				continue // a restart asked for: no crash, no backoff
			}
			uptime = time.Since(p.Started())
			exit = p.ExitStatus()
		}
		if c.ctx.Err() != nil {
			return
		}
		c.standin.start()
		now := time.Now()
		delay, fatal := tr.crashed(now, uptime)
		v := c.verdict(delay, fatal, exit, &same)
		c.mu.Lock()
		c.lastExit = exit
		c.usage = usage{}
		c.loop = v.loop
		if v.fatal {
			c.state = Fatal
			c.failure = v.failure
			c.changedLocked()
			c.mu.Unlock()
			c.log.Error().Str("last_exit", exit).Str("reason", v.failure).Msg("child is fatal and stays down")
			c.fatalOnce.Do(func() { close(c.fatal) })
			return
		}
		delay = v.delay
		c.restarts++
		c.state = Backoff
		c.nextRetry = now.Add(delay)
		c.changedLocked()
		c.mu.Unlock()
		c.log.Warn().Str("last_exit", exit).Stringer("uptime", uptime.Round(time.Millisecond)).Stringer("backoff", delay).Msg("child exited; restarting")
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.kick:
			t.Stop()
		case <-c.ctx.Done():
			t.Stop()
			return
		}
	}
}

// currentSpec is the spec with the current arguments; call with c.mu held.
func (c *child) currentSpec() Spec {
	sp := c.spec
	sp.Args = c.args
	return sp
}

// setArgs changes the arguments of the next start.
func (c *child) setArgs(args []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.args = args
}

// watch waits until the current process exits and reports true, or until
// Stop and reports false. A handover puts a new process in c.proc while the
// old one still runs; the exit of the old one only moves the watch on.
func (c *child) watch(p **Process) bool {
	for {
		select {
		case <-(*p).Done():
		case <-c.ctx.Done():
			return false
		}
		c.mu.Lock()
		cur := c.proc
		c.mu.Unlock()
		if cur == *p {
			return true
		}
		*p = cur
	}
}

// attempt starts one process. Before a restart it waits until the crashed
// child's port is free again, so a leftover holder is named instead of the
// new child failing with "address in use".
func (c *child) attempt(first bool) (*Process, error) {
	// The ports of Listen sockets are ours and stay bound; nothing to wait for.
	if !first && len(c.spec.Listen) == 0 {
		for _, port := range append([]int{c.spec.Port}, c.spec.Extra...) {
			if port <= 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(c.ctx, c.readyTimeout)
			err := waitPortFree(ctx, port)
			cancel()
			if c.ctx.Err() != nil {
				return nil, errStopping
			}
			if err != nil {
				return nil, fmt.Errorf("port not free for restart: %w", err)
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return nil, errStopping
	}
	p, err := startProcess(c.sp, c.currentSpec(), c.sink, c.files)
	if err != nil {
		return nil, err
	}
	c.proc = p
	c.state = Starting
	c.nextRetry = time.Time{}
	c.sampler = usageSampler{id: p.Identity()}
	c.changedLocked()
	c.log.Info().Int("pid", p.Pid()).Msg("started")
	return p, nil
}

// awaitReady polls the readiness URL until it answers 200, the process
// exits, or the ready timeout passes; then the process is killed, which the
// run loop sees as a crash. It reports whether the process became ready.
func (c *child) awaitReady(p *Process) bool {
	ctx, cancel := context.WithTimeout(c.ctx, c.readyTimeout)
	defer cancel()
	probeCtx, endProbes := untilExit(ctx, p)
	defer endProbes()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		if c.probe(probeCtx) {
			c.mu.Lock()
			if c.proc == p && c.state == Starting {
				c.state = Running
				c.loop = ""
				c.changedLocked()
			}
			c.mu.Unlock()
			select { // a restart asked for while it was starting is done
			case <-c.kick:
			default:
			}
			c.readyOnce.Do(func() { close(c.ready) })
			c.log.Info().Int("pid", p.Pid()).Stringer("after", time.Since(p.Started()).Round(time.Millisecond)).Msg("ready")
			return true
		}
		select {
		case <-p.Done():
			return false
		case <-ctx.Done():
			select {
			case <-p.Done():
				// It exited as the time ran out: its own last line,
				// not a timeout, says why (the early-fatal rule
				// compares them).
				return false
			default:
			}
			if c.ctx.Err() == nil {
				c.log.Error().Stringer("timeout", c.readyTimeout).Msg("not ready in time; killing it")
				c.tail.add(fmt.Sprintf("posterctl: %s was not ready within %v", c.spec.Name, c.readyTimeout))
				p.Kill()
			}
			return false
		case <-tick.C:
		}
	}
}

// untilExit is ctx, also ended when p exits. A probe of a socket the
// supervisor holds (backendsockets.go) is accepted by the kernel and then
// waits for an answer nobody gives once the process has exited: probes run
// under it. The caller must call the cancel function.
func untilExit(ctx context.Context, p *Process) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-p.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (c *child) probe(ctx context.Context) bool {
	if c.spec.ReadyURL == "" {
		return true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.spec.ReadyURL, nil)
	if err != nil {
		return false
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Stop ends restarting and stops the current process: SIGTERM to its group,
// SIGKILL once ctx ends. Safe to call more than once.
func (c *child) Stop(ctx context.Context) {
	c.mu.Lock()
	c.stopping = true
	p := c.proc
	if c.state != Fatal {
		c.state = Stopping
		c.changedLocked()
	}
	c.mu.Unlock()
	c.cancel()
	if p != nil {
		p.Stop(ctx)
	}
	c.wg.Wait()
	c.mu.Lock()
	if c.state != Fatal {
		c.state = Exited
		c.nextRetry = time.Time{}
		if p != nil {
			c.lastExit = p.ExitStatus()
		}
		c.changedLocked()
	}
	c.usage = usage{}
	c.mu.Unlock()
	c.standin.stop()
	c.http.CloseIdleConnections()
}

// sampleUsage refreshes CPU % and RSS of the current process.
func (c *child) sampleUsage(ctx context.Context, now time.Time) {
	c.mu.Lock()
	p, s := c.proc, c.sampler
	live := p != nil && (c.state == Starting || c.state == Running)
	c.mu.Unlock()
	if !live {
		return
	}
	u, err := s.sample(ctx, now)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != p { // restarted meanwhile; this sample belongs to the old one
		return
	}
	c.sampler = s
	if err != nil {
		u = usage{}
	}
	c.usage = u
}

// unsampled reports a live process that has no usage sample yet.
func (c *child) unsampled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc != nil && (c.state == Starting || c.state == Running) && c.sampler.at.IsZero()
}
