package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
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
	mux.HandleFunc("POST /v1/restart", func(w http.ResponseWriter, r *http.Request) {
		grace, ok := graceParam(w, r)
		if !ok {
			return
		}
		name := r.URL.Query().Get("name")
		streamOp(w, func(say Say) error { return s.Restart(name, grace, say) })
	})
	mux.HandleFunc("POST /v1/scale", func(w http.ResponseWriter, r *http.Request) {
		grace, ok := graceParam(w, r)
		if !ok {
			return
		}
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "n: want a number of backends"})
			return
		}
		streamOp(w, func(say Say) error { return s.Scale(n, grace, say) })
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

func graceParam(w http.ResponseWriter, r *http.Request) (time.Duration, bool) {
	grace, err := time.ParseDuration(r.URL.Query().Get("grace"))
	if err != nil || grace < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "grace: want a duration such as 10s"})
		return 0, false
	}
	return grace, true
}

// opLine is one line of a restart's or scale's answer: progress messages,
// then a last line with done or error.
type opLine struct {
	Msg   string `json:"msg,omitempty"`
	Done  bool   `json:"done,omitempty"`
	Error string `json:"error,omitempty"`
}

// streamOp runs op and streams its progress as JSON lines. An op refused
// before its first step (busy, invalid) gets a plain error status instead,
// since nothing has been sent yet.
func streamOp(w http.ResponseWriter, op func(Say) error) {
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	started := false
	say := func(format string, args ...any) {
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		_ = enc.Encode(opLine{Msg: fmt.Sprintf(format, args...)})
		_ = rc.Flush()
	}
	err := op(say)
	var inv *InvalidError
	switch {
	case !started && errors.Is(err, ErrBusy):
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
	case !started && errors.As(err, &inv):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
	case !started && err != nil:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	case err != nil:
		_ = enc.Encode(opLine{Error: err.Error()})
	default:
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
		}
		_ = enc.Encode(opLine{Done: true})
	}
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

// Restart asks for a rolling restart of name ("" for every backend) and
// passes each progress line to say until it is done.
func (c *Client) Restart(ctx context.Context, name string, grace time.Duration, say func(string)) error {
	return c.stream(ctx, "/v1/restart?name="+url.QueryEscape(name)+"&grace="+grace.String(), say)
}

// Scale asks for n local backends and passes each progress line to say.
func (c *Client) Scale(ctx context.Context, n int, grace time.Duration, say func(string)) error {
	return c.stream(ctx, "/v1/scale?n="+strconv.Itoa(n)+"&grace="+grace.String(), say)
}

func (c *Client) stream(ctx context.Context, path string, say func(string)) error {
	resp, err := c.send(ctx, http.MethodPost, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = dec.Decode(&e)
		return errors.New(e.Error)
	}
	for {
		var l opLine
		if err := dec.Decode(&l); err != nil {
			return fmt.Errorf("the supervisor ended the answer early: %w", err)
		}
		switch {
		case l.Error != "":
			return errors.New(l.Error)
		case l.Done:
			return nil
		default:
			say(l.Msg)
		}
	}
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	resp, err := c.send(ctx, method, path)
	if err != nil {
		return err
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

// send makes one request on the control socket; a socket that is missing or
// does not answer is ErrNotRunning.
func (c *Client) send(ctx context.Context, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://posterctl"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if isNotListening(err) {
			return nil, ErrNotRunning
		}
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return resp, nil
}

// isNotListening is true for a socket file that is missing or stale.
func isNotListening(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ENOENT) || strings.Contains(err.Error(), "connection refused")
}

// CloseIdleConnections releases the client's pooled connections.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }
