package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// zerologWriter lets net/http's own messages go through zerolog.
type zerologWriter struct{ log zerolog.Logger }

func (z zerologWriter) Write(b []byte) (int, error) {
	z.log.Warn().Msg(strings.TrimSpace(string(b)))
	return len(b), nil
}

// Server is a running load balancer: the proxy port, the health port and the
// health checker. Open listens on both ports before returning, so a port in
// use is a start-up error; Close stops accepting, lets in-flight requests
// finish, and stops every goroutine it started.
type Server struct {
	cfg     Config
	log     zerolog.Logger
	pool    []*Backend
	metrics *metrics
	proxy   *Proxy
	checker *HealthChecker

	srv          *fasthttp.Server
	healthSrv    *http.Server
	ln, healthLn net.Listener
	wg           sync.WaitGroup
	closeOnce    sync.Once
	closeErr     error
}

// NewServer validates cfg (after filling defaults) and builds a server that
// is not listening yet. probe nil means GET /healthz over HTTP.
func NewServer(cfg Config, logger zerolog.Logger, probe ProbeFunc) (*Server, error) {
	cfg.SetDefaults()
	addrs, err := cfg.Validate()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: logger}
	for i, a := range addrs {
		s.pool = append(s.pool, NewBackend(a, i))
	}
	s.metrics = newMetrics(s.pool)
	onChange := s.stateChanged
	s.proxy = newProxy(&s.cfg, s.pool, s.metrics, logger, onChange)
	s.checker = NewHealthChecker(&s.cfg, s.pool, probe, onChange)

	s.srv = &fasthttp.Server{
		Handler: s.proxy.Handle,
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
		Logger:                fasthttpLogger{logger},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.serveHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	s.healthSrv = &http.Server{
		Handler:           mux,
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
}

// Open listens on both ports, then serves in the background.
func (s *Server) Open() error {
	ln, err := listen(s.cfg.Listen)
	if err != nil {
		return err
	}
	hln, err := listen(s.cfg.HealthListen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("health port: %w", err)
	}
	s.ln, s.healthLn = ln, hln
	s.checker.Start()
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil {
			s.log.Error().Err(err).Str("addr", ln.Addr().String()).Msg("serve")
		}
	}()
	go func() {
		defer s.wg.Done()
		if err := s.healthSrv.Serve(hln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Str("addr", hln.Addr().String()).Msg("serve health")
		}
	}()
	return nil
}

func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("listen on %s: address already in use", addr)
		}
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Addr is the proxy's listening address (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// HealthAddr is the health port's listening address.
func (s *Server) HealthAddr() string { return s.healthLn.Addr().String() }

// Backends returns the pool, for status reports and tests.
func (s *Server) Backends() []*Backend { return s.pool }

// Close stops accepting on both ports and waits, until ctx ends, for
// in-flight requests; then it stops the health checker. Safe to call twice.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		if s.ln == nil {
			s.checker.Close()
			return
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Add(2)
		go func() {
			defer wg.Done()
			// Stops accepting, lets in-flight requests finish (their
			// connections then close), and closes idle connections.
			errs[0] = s.srv.ShutdownWithContext(ctx)
		}()
		go func() {
			defer wg.Done()
			if err := s.healthSrv.Shutdown(ctx); err != nil {
				errs[1] = err
				s.healthSrv.Close() // deadline passed: drop what is left
			}
		}()
		wg.Wait()
		s.wg.Wait()
		s.checker.Close()
		s.proxy.Close()
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("drain: %w", err)
		}
	})
	return s.closeErr
}

// Health is the body of GET /health.
type Health struct {
	Status   string          `json:"status"`
	Backends []BackendStatus `json:"backends"`
}

// Health reports overall and per-backend state.
func (s *Server) Health() Health {
	h := Health{Backends: make([]BackendStatus, 0, len(s.pool))}
	up := 0
	for _, b := range s.pool {
		st := b.Status()
		if st.Healthy {
			up++
		}
		h.Backends = append(h.Backends, st)
	}
	switch {
	case up == len(s.pool):
		h.Status = "ok"
	case up > 0:
		h.Status = "degraded"
	default:
		h.Status = "down"
	}
	return h
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	h := s.Health()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if h.Status == "down" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(h)
}
