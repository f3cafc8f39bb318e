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
