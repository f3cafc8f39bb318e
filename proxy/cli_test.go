package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
)

// These tests drive `posterctl lb` as a user would.

func TestLBCommandBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"NoBackend", []string{"lb"}, "posterctl: lb: no backend given: pass --backend host:port at least once"},
		{"BadBackend", []string{"lb", "--backend", "nonsense"}, `posterctl: lb: backend "nonsense": want host:port or http://host:port`},
		{"BadPort", []string{"lb", "--port", "99999", "--backend", "127.0.0.1:1"}, "posterctl: lb: --port 99999: want a port from 1 to 65535"},
		{"BadLogLevel", []string{"--log-level", "loud", "lb", "--backend", "127.0.0.1:1"}, `posterctl: invalid --log-level "loud"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := clitest.Run(t, 30*time.Second, posterctlBin, tc.args...)
			if code != 2 || !strings.HasPrefix(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
				t.Fatalf("exit %d, output %q; want exit 2 and one line starting %q", code, out, tc.want)
			}
		})
	}
}

func TestLBCommandPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	free := strconv.Itoa(clitest.FreePort(t))
	for _, args := range [][]string{
		{"--host", "127.0.0.1", "--port", port, "--health-port", free},
		{"--host", "127.0.0.1", "--port", free, "--health-port", port},
	} {
		out, code := clitest.Run(t, 30*time.Second, posterctlBin, append([]string{"lb", "--backend", "127.0.0.1:1"}, args...)...)
		if code != 1 || !strings.Contains(out, "127.0.0.1:"+port+": address already in use") {
			t.Fatalf("exit %d, output %q; want exit 1 naming the busy port", code, out)
		}
	}
}

func TestLBCommandGracefulStop(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			arrived, release := make(chan struct{}), make(chan struct{})
			be := testBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
				close(arrived)
				<-release
				io.WriteString(w, "finished")
			})
			lb, port, client := startLBCommand(t, "json", be)
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			got := make(chan result, 1)
			go func() { got <- do(t, client, "GET", "http://"+addr+"/slow", nil) }()
			<-arrived
			if err := lb.Signal(sig); err != nil {
				t.Fatal(err)
			}
			clitest.Eventually(t, 10*time.Second, func() error {
				c, err := net.Dial("tcp", addr)
				if err == nil {
					c.Close()
					return errors.New("still accepting after " + sig.String())
				}
				return nil
			})
			select {
			case <-lb.Done():
				t.Fatalf("exited with a request in flight: %s", lb.Output())
			default:
			}
			close(release)
			select {
			case r := <-got:
				if r.status != 200 || r.body != "finished" {
					t.Fatalf("in-flight request: %d %q", r.status, r.body)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("in-flight request did not finish")
			}
			if code := lb.Wait(t, 10*time.Second); code != 0 {
				t.Fatalf("exit %d after %v, want 0; output:\n%s", code, sig, lb.Output())
			}
			out := lb.Output()
			for _, want := range []string{`"message":"load balancer ready"`, `"path":"/slow","status":200`, `"message":"stopped"`} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %s:\n%s", want, out)
				}
			}
		})
	}
}

// TestLBCommandAccessLines: `posterctl lb` off a terminal writes one access
// line per request, JSON-escaped however hostile the path and request id,
// and none is lost at a graceful stop; --log-format console keeps its
// human lines.
func TestLBCommandAccessLines(t *testing.T) {
	be := testBackend(t, "a", nil)
	ids := []string{`plain`, `q"uote`, `back\slash`, "tab\there", "</script>", "é-ü", "\u2028"}
	for _, format := range []string{"json", "auto", "console"} {
		t.Run(format, func(t *testing.T) {
			lb, port, client := startLBCommand(t, format, be)
			for _, id := range ids {
				if r := do(t, client, "GET", fmt.Sprintf("http://127.0.0.1:%d/p/%%22x%%5C", port), nil, "X-Request-Id", id); r.status != 200 {
					t.Fatalf("id %q: %d", id, r.status)
				}
			}
			if err := lb.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := lb.Wait(t, 10*time.Second); code != 0 {
				t.Fatalf("exit %d: %s", code, lb.Output())
			}
			out := lb.Output()
			if format == "console" {
				if n := strings.Count(out, "request"); n < len(ids) || strings.Contains(out, `"message":"request"`) {
					t.Fatalf("console output, %d mentions of request:\n%s", n, out)
				}
				return
			}
			var got []string
			for _, l := range strings.Split(out, "\n") {
				var m map[string]any
				if json.Unmarshal([]byte(l), &m) != nil || m["message"] != "request" {
					continue
				}
				if m["path"] != `/p/"x\` || m["component"] != "lb" || m["status"] != float64(200) {
					t.Errorf("access line %s", l)
				}
				got = append(got, m["request_id"].(string))
			}
			if strings.Join(got, "|") != strings.Join(ids, "|") {
				t.Fatalf("request ids logged %q, want %q; output:\n%s", got, ids, out)
			}
		})
	}
}

// startLBCommand runs `posterctl lb` in the given log format in front of be
// and waits until its health port answers 200; it returns the process, the
// LB's port and a client.
func startLBCommand(t *testing.T, format string, be *httptest.Server) (*clitest.Process, int, *http.Client) {
	t.Helper()
	port, health := clitest.FreePort(t), clitest.FreePort(t)
	lb := clitest.Start(t, posterctlBin, "--log-format", format, "lb", "--host", "127.0.0.1",
		"--port", strconv.Itoa(port), "--health-port", strconv.Itoa(health), "--backend", hostport(be))
	client := newClient(t)
	clitest.Eventually(t, 30*time.Second, func() error {
		return clitest.GetOK(client, fmt.Sprintf("http://127.0.0.1:%d/health", health))
	})
	return lb, port, client
}
