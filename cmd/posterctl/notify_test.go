package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/posterctl/posterctl/supervisor"
	"github.com/rs/zerolog"
)

// fakeNotifySocket is a service manager's NOTIFY_SOCKET: a unixgram socket
// whose messages Next returns in order.
type fakeNotifySocket struct {
	path string
	conn *net.UnixConn
	msgs chan string
	done chan struct{}
}

func newFakeNotifySocket(t *testing.T) *fakeNotifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeNotifySocket{path: path, conn: conn, msgs: make(chan string, 100), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			s.msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-s.done
	})
	return s
}

// Next returns the next message, failing the test after timeout.
func (s *fakeNotifySocket) Next(t *testing.T, timeout time.Duration, what string) string {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(timeout):
		t.Fatalf("no sd_notify message within %v (waiting for %s)", timeout, what)
		return ""
	}
}

// Rest returns every message sent so far: the test sends itself a last one
// and reads up to it, since datagrams keep their order.
func (s *fakeNotifySocket) Rest(t *testing.T) []string {
	t.Helper()
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: s.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("END")); err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		m := s.Next(t, 10*time.Second, "the test's own END")
		if m == "END" {
			return out
		}
		out = append(out, m)
	}
}

// fakeStatus is a supervisor whose status the test sets.
type fakeStatus struct {
	mu sync.Mutex
	st supervisor.Status
}

func (f *fakeStatus) Status(context.Context) supervisor.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeStatus) set(stopping bool, states ...supervisor.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = supervisor.Status{Supervisor: supervisor.SupervisorStatus{Stopping: stopping},
		Children: []supervisor.ChildStatus{{Name: "10.0.0.2:3001", Remote: true}}}
	for i, s := range states {
		f.st.Children = append(f.st.Children, supervisor.ChildStatus{Name: fmt.Sprint("child-", i), State: s})
	}
}

// STATUS= follows the children up; a stop the supervisor was asked for
// (posterctl down) says STOPPING=1, once.
func TestNotifierFollowsTheCluster(t *testing.T) {
	sock := newFakeNotifySocket(t)
	t.Setenv("NOTIFY_SOCKET", sock.path)
	n := newNotifier(zerolog.Nop())
	if n == nil {
		t.Fatal("no notifier with NOTIFY_SOCKET set")
	}
	n.every = 10 * time.Millisecond
	src := &fakeStatus{}
	src.set(false, supervisor.Running, supervisor.Running)
	n.Starting(2)
	n.Ready(context.Background(), src, "http://127.0.0.1:3000/")
	for _, want := range []string{
		"STATUS=starting 2 children",
		"READY=1\nSTATUS=2 of 2 children up, app http://127.0.0.1:3000/",
	} {
		if got := sock.Next(t, 10*time.Second, want); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	src.set(false, supervisor.Running, supervisor.Backoff)
	if got, want := sock.Next(t, 10*time.Second, "1 of 2"), "STATUS=1 of 2 children up, app http://127.0.0.1:3000/"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	src.set(true, supervisor.Running, supervisor.Running)
	if got, want := sock.Next(t, 10*time.Second, "STOPPING=1"), "STOPPING=1\nSTATUS=stopping"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	n.Stopping()
	n.Stopping()
	if rest := sock.Rest(t); len(rest) > 0 {
		t.Fatalf("messages after STOPPING=1: %q", rest)
	}

	t.Setenv("NOTIFY_SOCKET", "")
	none := newNotifier(zerolog.Nop())
	if none != nil {
		t.Fatal("a notifier without NOTIFY_SOCKET")
	}
	none.Starting(1) // a nil notifier does nothing
	none.Ready(context.Background(), src, "")
	none.Stopping()
}

// `up --listen 127.0.0.1` under a service manager: READY=1 with the
// children up once the cluster serves, the app's socket bound to loopback
// alone, STOPPING=1 on SIGTERM, and nothing out of order.
func TestUpNotifiesAndListens(t *testing.T) {
	sock := newFakeNotifySocket(t)
	port, health, base := clitest.FreePort(t), clitest.FreePort(t), clitest.FreePort(t)
	cmd := exec.Command(bin, "up", "--listen", "127.0.0.1", "--backends", "1",
		"--port", strconv.Itoa(port), "--health-port", strconv.Itoa(health), "--base-port", strconv.Itoa(base),
		"--data-dir", t.TempDir(), "--run-dir", filepath.Join(t.TempDir(), "run"), "--grace", "5s")
	cmd.Env = append(cleanEnv(), "NOTIFY_SOCKET="+sock.path)
	up := clitest.StartCmd(t, cmd)

	var msgs []string
	for !strings.Contains(strings.Join(msgs, "\n"), "READY=1") {
		select {
		case <-up.Done():
			t.Fatalf("up exited before READY=1; output:\n%s", up.Output())
		default:
		}
		select {
		case m := <-sock.msgs:
			msgs = append(msgs, m)
		case <-up.Done():
		case <-time.After(90 * time.Second):
			t.Fatalf("no READY=1 within 90s; messages %q; output:\n%s", msgs, up.Output())
		}
	}
	want := fmt.Sprintf("READY=1\nSTATUS=2 of 2 children up, app http://127.0.0.1:%d/", port)
	if len(msgs) != 2 || msgs[0] != "STATUS=starting 2 children" || msgs[1] != want {
		t.Fatalf("messages %q, want STATUS=starting 2 children, then %q", msgs, want)
	}

	if addrs := listeners(t, port); len(addrs) != 1 || addrs[0] != "127.0.0.1" {
		t.Fatalf("port %d is bound on %q, want 127.0.0.1 alone", port, addrs)
	}
	if addrs := listeners(t, health); len(addrs) != 1 || addrs[0] != "127.0.0.1" {
		t.Fatalf("health port %d is bound on %q, want 127.0.0.1 alone", health, addrs)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz through the LB: %s", resp.Status)
	}

	if err := up.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := up.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("up exited %d after SIGTERM; output:\n%s", code, up.Output())
	}
	rest := sock.Rest(t)
	if len(rest) == 0 || rest[len(rest)-1] != "STOPPING=1\nSTATUS=stopping" {
		t.Fatalf("messages after READY=1: %q, want STOPPING=1 last", rest)
	}
	for _, m := range rest[:len(rest)-1] {
		if !strings.HasPrefix(m, "STATUS=") || strings.Contains(m, "READY") {
			t.Fatalf("messages after READY=1: %q, want STATUS= lines, then STOPPING=1", rest)
		}
	}
}

// listeners lists the local addresses of the TCP sockets listening on port,
// from the kernel's tables (IPv4 and IPv6).
func listeners(t *testing.T, port int) []string {
	t.Helper()
	var out []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if errors.Is(err, os.ErrNotExist) {
			if table == "/proc/net/tcp" {
				t.Skipf("SKIPPED: %s is missing: the socket's bound address is read from Linux's /proc", table)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 4 || f[3] != "0A" { // TCP_LISTEN
				continue
			}
			hexIP, hexPort, _ := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err != nil || int(p) != port {
				continue
			}
			out = append(out, procIP(t, hexIP).String())
		}
	}
	return out
}

// procIP decodes /proc/net/tcp's address: 32-bit words in host order
// (little-endian on every platform this runs on).
func procIP(t *testing.T, h string) net.IP {
	t.Helper()
	if len(h) != 8 && len(h) != 32 {
		t.Fatalf("address %q in /proc/net/tcp", h)
	}
	ip := make(net.IP, len(h)/2)
	for w := 0; w < len(ip); w += 4 {
		v, err := strconv.ParseUint(h[2*w:2*w+8], 16, 32)
		if err != nil {
			t.Fatal(err)
		}
		ip[w], ip[w+1], ip[w+2], ip[w+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	return ip
}
