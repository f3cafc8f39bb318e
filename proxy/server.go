package proxy

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/posterctl/posterctl/lbapi"
	"github.com/posterctl/posterctl/proxy/internal/sockio"
)

// zerologWriter lets net/http's own messages go through zerolog.
type zerologWriter struct{ log zerolog.Logger }

func (z zerologWriter) Write(b []byte) (int, error) {
	z.log.Warn().Msg(strings.TrimSpace(string(b)))
	return len(b), nil
}

// fasthttpLogger sends fasthttp's own messages through zerolog.
type fasthttpLogger struct{ log zerolog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn().Msg(fmt.Sprintf(format, args...))
}

// Server is a running load balancer: the proxy port, the health port and the
// health checker. Open listens on both ports before returning, so a port in
// use is a start-up error; Close stops accepting, lets in-flight requests
// finish, and stops every goroutine it started.
type Server struct {
	cfg     Config
	log     zerolog.Logger
	set     backendSet
	metrics *metrics
	proxy   *Proxy
	checker *HealthChecker
	limits  *connLimiter
	watch   *hungWatch
	clients clientConns // for the drain (drain.go)
	events  *eventLog
	pid     int
	started time.Time

	// mu orders changes of the set (admin calls, the reaper); the request
	// path never takes it.
	mu      sync.Mutex
	leaving []leavingBackend

	// statsMu guards the per-second history the dashboard draws.
	statsMu      sync.Mutex
	history      map[*Backend]*series
	totalHistory series
	lastUnserved uint64
	lastSample   time.Time

	srv          *fasthttp.Server
	healthSrv    *http.Server
	ln, healthLn net.Listener
	wg           sync.WaitGroup
	bgCtx        context.Context
	bgCancel     context.CancelFunc
	closeOnce    sync.Once
	closeErr     error
}

// NewServer validates cfg (after filling defaults) and builds a server that
// is not listening yet. probe nil means GET /healthz over HTTP.
func NewServer(cfg Config, logger zerolog.Logger, probe ProbeFunc) (*Server, error) {
	cfg.SetDefaults()
	refs, err := cfg.Validate()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: logger, events: newEventLog(200), pid: os.Getpid(),
		history: make(map[*Backend]*series)}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	set := make([]*Backend, 0, len(refs))
	for i, r := range refs {
		b := NewBackend(r.Address, i)
		b.setName(r.Name)
		b.conns = newConnPool(r.Address, &s.cfg)
		set = append(set, b)
	}
	s.set.store(set)
	s.metrics = newMetrics(s.everyBackend)
	onChange := s.stateChanged
	s.proxy = newProxy(&s.cfg, &s.set, s.metrics, logger, onChange)
	s.limits = newConnLimiter(&s.cfg, logger)
	s.proxy.limits = s.limits
	s.checker = NewHealthChecker(&s.cfg, set, probe, onChange)
	s.watch = newHungWatch(s.everyBackend, s.checker.probe, s.ejectHung)

	s.srv = &fasthttp.Server{
		Handler:   s.handle,
		ConnState: s.clients.connState,
		// The request header must fit in the read buffer: that is the limit
		// (431 beyond it).
		ReadBufferSize:  cfg.MaxHeaderBytes,
		WriteBufferSize: 8 << 10,
		// fasthttp times the whole request read; the handler lifts the
		// deadline for bodies large enough to stream.
		ReadTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout: cfg.ClientIdleTimeout,
		// Bodies up to the replay limit are read whole (and can be sent
		// again); larger ones stream through.
		MaxRequestBodySize:           int(cfg.MaxReplayBody),
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		// Pass the backend's own headers, add none.
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
		ErrorHandler:          serverReadError,
		Logger:                fasthttpLogger{logger},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.serveHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	s.adminRoutes(mux)
	s.dashboardRoutes(mux)
	s.healthSrv = &http.Server{
		Handler:           hostGuard(mux),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.ClientIdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          log.New(zerologWriter{logger}, "", 0),
	}
	return s, nil
}

// stateChanged is the one place a backend state change is logged and counted.
func (s *Server) stateChanged(b *Backend, t Transition, err error, via string) {
	ev := s.log.Warn()
	if t == WentUp {
		ev = s.log.Info()
	}
	if err != nil {
		ev = ev.Str("error", err.Error())
	}
	ev.Str("backend", b.addr).Str("state", t.String()).Str("via", via).Msg("backend " + t.String())
	kind, detail := lbapi.EventUp, "health checks pass"
	if t == WentDown {
		kind, detail = lbapi.EventDown, "health checks fail"
		if via == "request" {
			detail = "a request to it failed"
		}
		if err != nil {
			detail += ": " + err.Error()
		}
	}
	s.events.add(b, kind, detail)
}

// Open listens on both ports, or takes the inherited sockets where
// ListenFD/HealthListenFD are set, then serves in the background. Ports it
// binds itself get SO_REUSEPORT, so a new balancer can bind them beside this
// one.
func (s *Server) Open() error {
	ln, err := openListener(s.cfg.ListenFD, s.cfg.Listen, "listen")
	if err != nil {
		return err
	}
	hln, err := openListener(s.cfg.HealthListenFD, s.cfg.HealthListen, "health listen")
	if err != nil {
		ln.Close()
		return fmt.Errorf("health port: %w", err)
	}
	s.serve(ln, hln)
	return nil
}

func (s *Server) serve(ln, hln net.Listener) {
	s.ln, s.healthLn = ln, hln
	s.started = time.Now()
	s.checker.Start()
	s.watch.start()
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		s.background()
	}()
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(sockio.Listener{Listener: limitListener{ln, s.limits}}); err != nil {
			s.log.Error().Err(err).Str("addr", ln.Addr().String()).Msg("serve")
		}
	}()
	go func() {
		defer s.wg.Done()
		if err := s.healthSrv.Serve(hln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Str("addr", hln.Addr().String()).Msg("serve health")
		}
	}()
}

// background lets go of removed backends once drained, and samples the
// counters once a second for the dashboard.
func (s *Server) background() {
	reap := time.NewTicker(reapAfter / 2)
	defer reap.Stop()
	sample := time.NewTicker(time.Second)
	defer sample.Stop()
	s.sample(time.Now())
	for {
		select {
		case <-s.bgCtx.Done():
			return
		case now := <-reap.C:
			s.reap(now)
		case now := <-sample.C:
			s.sample(now)
		}
	}
}

// Addr is the proxy's listening address (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// HealthAddr is the health port's listening address.
func (s *Server) HealthAddr() string { return s.healthLn.Addr().String() }

// Close stops accepting on both ports and waits, until ctx ends, for
// in-flight requests; then it stops the health checker. Safe to call twice.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		if s.ln == nil {
			s.checker.Close()
			s.closeUpstreams()
			return
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Add(2)
		go func() {
			defer wg.Done()
			// Stops accepting, lets in-flight requests finish (their
			// connections then close), and closes connections that
			// stay idle (see drain.go).
			errs[0] = s.drainClients(ctx)
		}()
		go func() {
			defer wg.Done()
			if err := s.healthSrv.Shutdown(ctx); err != nil {
				errs[1] = err
				s.healthSrv.Close() // deadline passed: drop what is left
			}
		}()
		wg.Wait()
		s.bgCancel()
		s.wg.Wait()
		// Serve has returned: no refusal can start now.
		s.limits.wait()
		s.watch.stop()
		s.checker.Close()
		s.closeUpstreams()
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("drain: %w", err)
		}
	})
	return s.closeErr
}

// closeUpstreams drops the idle connections to every backend.
func (s *Server) closeUpstreams() {
	for _, b := range s.everyBackend() {
		b.conns.close()
	}
}
