// Package web serves the Poster app over HTTP: the JSON API, the health
// check and the embedded web page. It depends only on the app.Store
// interface, never on a database driver.
package web

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/posterctl/posterctl/app"
	"github.com/rs/xid"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"
	"golang.org/x/crypto/bcrypt"
)

// Server timeouts. IdleTimeout is generous on purpose: the load balancer
// keeps pooled connections to us and closes its idle ones well before this,
// so it never reuses a connection we are closing (a 502 on POST otherwise).
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 64 << 10
)

// Server is the Poster HTTP server of one backend process.
type Server struct {
	// Store is shared with every other backend using the same database.
	Store app.Store
	// Name is sent in the X-Backend header of every response.
	Name string
	// Log receives one line per request and server errors.
	Log zerolog.Logger
	// BcryptCost defaults to bcrypt.DefaultCost; tests lower it.
	BcryptCost int
	// Now defaults to time.Now.
	Now func() time.Time
	// ExpectStoreID, when set, is the store id of the cluster's data set
	// (`up` records it at start; posterctl backend --store-id passes it).
	// A store with another id makes /healthz answer 503, so the load
	// balancer never puts this backend in rotation. Empty: any store.
	ExpectStoreID string
	// ProxySecret is the secret the cluster's load balancer sends in the
	// fwdauth.Header header. Only requests carrying it have their
	// X-Forwarded-For and X-Forwarded-Proto believed; when it is empty,
	// nobody's are.
	ProxySecret string
	// Limits are the login and register rate limits; zero fields take
	// DefaultLimits' values.
	Limits Limits

	ln      net.Listener
	srv     *http.Server
	serveCh chan error // receives the serve goroutine's result

	dummyOnce sync.Once
	dummy     []byte

	posts postCache
}

// NewServer returns a server for store; set fields before Open.
func NewServer(store app.Store, name string, log zerolog.Logger) *Server {
	return &Server{Store: store, Name: name, Log: log, BcryptCost: bcrypt.DefaultCost, Now: time.Now}
}

// Open listens on addr synchronously, so that a taken port is reported to
// the caller, and then serves in a goroutine until Close.
func (s *Server) Open(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.Serve(ln)
	return nil
}

// Serve serves on ln, a listener the caller opened (a socket inherited from
// the supervisor, say), in a goroutine until Close, which closes ln.
func (s *Server) Serve(ln net.Listener) {
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          newStdLogger(s.Log),
	}
	s.serveCh = make(chan error, 1)
	go func() { s.serveCh <- s.srv.Serve(ln) }()
}

// Addr is the address the server listens on (the real port when Open was
// given port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the base URL of the server.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops accepting, waits for in-flight requests until ctx ends, then
// drops the connections that are left. It returns ctx's error when requests
// had to be cut off.
func (s *Server) Close(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	if serr := <-s.serveCh; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("serve: %w", serr))
	}
	s.srv = nil
	return err
}

// route maps methods to handlers for one path.
type route map[string]http.HandlerFunc

// Handler returns the complete handler: middleware around the routes.
func (s *Server) Handler() http.Handler {
	if s.Now == nil {
		s.Now = time.Now
	}
	routes := map[string]route{
		"/":             {http.MethodGet: s.handlePage},
		"/healthz":      {http.MethodGet: s.handleHealthz},
		"/api/register": {http.MethodPost: s.handleRegister},
		"/api/login":    {http.MethodPost: s.handleLogin},
		"/api/logout":   {http.MethodDelete: s.handleLogout},
		"/api/user":     {http.MethodGet: s.handleUser},
		"/api/posts":    {http.MethodGet: s.handleListPosts, http.MethodPost: s.handleCreatePost},
		"/static/":      {http.MethodGet: s.handleStatic},
		"/favicon.ico":  {http.MethodGet: s.handleFavicon},
	}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		if strings.HasPrefix(path, "/static/") {
			path = "/static/"
		}
		rt, ok := routes[path]
		if !ok {
			writeError(w, r, http.StatusNotFound, "no such path: "+r.URL.Path)
			return
		}
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		fn, ok := rt[method]
		if !ok {
			w.Header().Set("Allow", rt.allow())
			writeError(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed; use %s", r.Method, rt.allow()))
			return
		}
		fn(w, r)
	})
	h = recoverer(h)
	h = hlog.AccessHandler(s.logRequest)(h)
	h = requestID(h)
	h = hlog.NewHandler(s.Log)(h)
	h = s.forwarded(h)
	name := s.Name
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		h.ServeHTTP(w, r)
	})
}

func (rt route) allow() string {
	var ms []string
	for m := range rt {
		ms = append(ms, m)
		if m == http.MethodGet {
			ms = append(ms, http.MethodHead)
		}
	}
	sort.Strings(ms)
	return strings.Join(ms, ", ")
}

// logRequest writes the access-log line. Health probes arrive every second
// from the load balancer, so successful ones are logged at debug level only.
func (s *Server) logRequest(r *http.Request, status, size int, d time.Duration) {
	l := hlog.FromRequest(r)
	ev := l.Info()
	if status >= 500 {
		ev = l.Warn()
	} else if r.URL.Path == "/healthz" {
		ev = l.Debug()
	}
	ev.Str("method", r.Method).
		Str("path", r.URL.Path).
		Int("status", status).
		Int("size", size).
		Dur("duration", d).
		Str("remote", r.RemoteAddr).
		Stringer("client", peerOf(r).addr).
		Msg("request")
}

// requestID keeps the caller's X-Request-Id (the load balancer sets one) so
// that one request can be followed across processes, or makes one up.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = xid.New().String()
		}
		w.Header().Set("X-Request-Id", id)
		l := hlog.FromRequest(r)
		l.UpdateContext(func(c zerolog.Context) zerolog.Context {
			return c.Str("request_id", id)
		})
		// At debug level a slow or stuck request shows up before it ends.
		l.Debug().Str("method", r.Method).Str("path", r.URL.Path).Msg("request started")
		next.ServeHTTP(w, r)
	})
}

// validRequestID accepts short printable ASCII ids, so a client cannot put
// control characters or megabytes into our logs.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range []byte(id) {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// recoverer turns a handler panic into a logged 500 instead of a dropped
// connection.
func recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				hlog.FromRequest(r).Error().Interface("panic", v).Msg("handler panic")
				writeError(w, r, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}
