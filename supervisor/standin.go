package supervisor

import (
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// The stand-in's limits. They are tighter than the LB's own (10 s header
// timeout): its whole point is that no client waits more than 2 s for an
// answer, and every answer it gives is a few bytes.
const (
	standinHeaderTimeout = time.Second
	standinMaxConns      = 1024
	// standinDrain bounds how long a stop waits for the stand-in's open
	// connections to get their 503 before the next LB generation starts;
	// the header timeout ends a silent one sooner.
	standinDrain = 1500 * time.Millisecond
)

// standin answers on the front door's held sockets while no generation of
// the child (the LB) serves them: 503 JSON with Retry-After on the app
// port, a 503 /health on the health port. Without it a crash-looping LB
// leaves connections queued on sockets nobody accepts from, and clients
// hang. It serves on duplicates of the held sockets, so stopping it closes
// the duplicates and never the sockets the next generation inherits; it is
// stopped before that generation starts, so the two never compete for a
// connection.
type standin struct {
	files      []*os.File
	health     []bool // per file: it is the health port
	retryAfter func() time.Duration
	log        zerolog.Logger

	mu    sync.Mutex
	srvs  []*http.Server
	ls    []net.Listener
	wg    sync.WaitGroup // the Serve loops
	conns sync.WaitGroup // connections accepted and not yet closed
}

// newStandin prepares a stand-in for files; healthPort tells which of them
// is the health port (by port number; 0: none).
func newStandin(files []*os.File, healthPort int, retryAfter func() time.Duration, log zerolog.Logger) *standin {
	s := &standin{files: files, retryAfter: retryAfter, log: log}
	for _, f := range files {
		s.health = append(s.health, healthPort > 0 && strings.HasSuffix(f.Name(), ":"+strconv.Itoa(healthPort)))
	}
	return s
}

// start begins answering; it does nothing when already started or nil.
func (s *standin) start() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srvs != nil {
		return
	}
	for i, f := range s.files {
		// FileListener serves on a dup of the held socket.
		l, err := net.FileListener(f)
		if err != nil {
			s.log.Error().Err(err).Str("socket", f.Name()).Msg("stand-in cannot serve on the held socket")
			continue
		}
		h := http.Handler(http.HandlerFunc(s.serveApp))
		if s.health[i] {
			h = http.HandlerFunc(s.serveHealth)
		}
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: standinHeaderTimeout,
			ReadTimeout:       standinHeaderTimeout,
			WriteTimeout:      standinHeaderTimeout,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          log.New(io.Discard, "", 0),
			ConnState: func(_ net.Conn, st http.ConnState) {
				switch st {
				case http.StateNew:
					s.conns.Add(1)
				case http.StateClosed, http.StateHijacked:
					s.conns.Done()
				}
			},
		}
		// One answer per connection: a kept-alive connection would tie a
		// client to the stand-in after the LB is back.
		srv.SetKeepAlivesEnabled(false)
		cl := &capListener{Listener: l, max: standinMaxConns}
		s.srvs, s.ls = append(s.srvs, srv), append(s.ls, cl)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = srv.Serve(cl)
		}()
	}
	s.log.Warn().Msg("no load balancer serving: the supervisor answers 503 on its ports until one is back")
}

// stop ends answering: no more accepts, open connections get their answer
// (for at most standinDrain), then it returns. Nil-safe and idempotent.
func (s *standin) stop() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srvs == nil {
		return
	}
	// The listeners first, and Serve awaited: every connection accepted is
	// then counted. Not Server.Shutdown: a request it reads once shutting
	// down is dropped without an answer (net/http returns from the
	// connection), which is exactly the client this must not fail.
	for _, l := range s.ls {
		l.Close()
	}
	s.wg.Wait()
	done := make(chan struct{})
	go func() {
		s.conns.Wait()
		close(done)
	}()
	t := time.NewTimer(standinDrain)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		// Only a client sending nothing stays this long; cut it off.
		for _, srv := range s.srvs {
			_ = srv.Close()
		}
		<-done
	}
	for _, srv := range s.srvs {
		_ = srv.Close()
	}
	s.srvs, s.ls = nil, nil
}

func (s *standin) running() bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srvs != nil
}

const restartingMsg = "load balancer restarting"

func (s *standin) unavailable(w http.ResponseWriter, body any) {
	secs := int((s.retryAfter() + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(1, secs)))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(body)
}

func (s *standin) serveApp(w http.ResponseWriter, r *http.Request) {
	s.unavailable(w, map[string]string{"error": restartingMsg})
}

// serveHealth keeps the health port's rule that it answers only to names
// of this machine (a rebound DNS name could be a hostile page's).
func (s *standin) serveHealth(w http.ResponseWriter, r *http.Request) {
	if !localHost(r.Host) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "host " + strconv.Quote(r.Host) + " refused: use 127.0.0.1 or localhost"})
		return
	}
	s.unavailable(w, map[string]any{"status": "unavailable", "error": restartingMsg, "backends": []any{}})
}

// localHost accepts a Host header naming this machine by address or as
// localhost, as the LB's health port does.
func localHost(h string) bool {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return net.ParseIP(h) != nil || strings.EqualFold(h, "localhost")
}

// overCap is what a connection beyond the cap gets at once, instead of
// waiting in the accept queue.
func overCap() string {
	body := `{"error":"` + restartingMsg + `"}` + "\n"
	return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// capListener keeps at most max connections open; the ones beyond get a
// canned 503 and are closed.
type capListener struct {
	net.Listener
	max  int64
	open atomic.Int64
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			_, _ = io.WriteString(c, overCap())
			c.Close()
			continue
		}
		return &countedConn{Conn: c, l: l}, nil
	}
}

type countedConn struct {
	net.Conn
	l    *capListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}
