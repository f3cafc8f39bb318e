package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

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
