package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrNotRunning means no supervisor answers on the run dir's socket.
var ErrNotRunning = errors.New("no cluster is running")

// controlServer serves status and down as HTTP+JSON on the unix socket.
type controlServer struct {
	path string
	srv  *http.Server
	done chan struct{}
}

func openControl(path string, s *Supervisor) (*controlServer, error) {
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Status(r.Context()))
	})
	mux.HandleFunc("POST /v1/down", func(w http.ResponseWriter, r *http.Request) {
		grace, err := time.ParseDuration(r.URL.Query().Get("grace"))
		if err != nil || grace < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "grace: want a duration such as 10s"})
			return
		}
		s.Stop(grace)
		select {
		case <-s.Stopped():
			writeJSON(w, http.StatusOK, map[string]any{"stopped": true, "pid": os.Getpid()})
		case <-r.Context().Done():
		}
	})
	c := &controlServer{
		path: path,
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		done: make(chan struct{}),
	}
	go func() {
		defer close(c.done)
		_ = c.srv.Serve(l) // ErrServerClosed after Close
	}()
	return c, nil
}

// Close lets a running /v1/down answer, then removes the socket.
func (c *controlServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.srv.Shutdown(ctx); err != nil {
		c.srv.Close()
	}
	<-c.done
	os.Remove(c.path)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Client talks to a supervisor through its run dir's socket.
type Client struct {
	runDir string
	http   *http.Client
}

// NewClient returns a client for the cluster in runDir.
func NewClient(runDir string) *Client {
	sock := filepath.Join(runDir, SocketName)
	return &Client{runDir: runDir, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}}}
}

// Status asks the supervisor for its status. It returns ErrNotRunning when
// the socket is missing or nobody answers on it.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", &st)
	return st, err
}

// Down asks the supervisor to stop and returns once every child is gone.
func (c *Client) Down(ctx context.Context, grace time.Duration) error {
	return c.do(ctx, http.MethodPost, "/v1/down?grace="+grace.String(), nil)
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://posterctl"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if isNotListening(err) {
			return ErrNotRunning
		}
		return fmt.Errorf("control socket: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("control socket: %s: %s", resp.Status, e.Error)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("control socket: decode: %w", err)
	}
	return nil
}

// isNotListening is true for a socket file that is missing or stale.
func isNotListening(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ENOENT) || strings.Contains(err.Error(), "connection refused")
}

// CloseIdleConnections releases the client's pooled connections.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }
