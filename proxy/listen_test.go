package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/posterctl/posterctl/lbapi"
)

func TestListenReusePort(t *testing.T) {
	first, err := ListenReusePort("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := ListenReusePort(first.Addr().String())
	if err != nil {
		t.Fatalf("second bind of %s with SO_REUSEPORT: %v", first.Addr(), err)
	}
	second.Close()

	// A socket bound without SO_REUSEPORT still makes the port busy.
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := ListenReusePort(plain.Addr().String()); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("bind of a port in use: %v", err)
	}
}

// TestListenerFileKeepsSocketNonBlocking: exec calls Fd on each extra file;
// that must not switch the shared socket to blocking mode under a balancer
// that serves on it.
func TestListenerFileKeepsSocketNonBlocking(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ListenerFile(ln)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fl&unix.O_NONBLOCK == 0 {
		t.Fatal("Fd on the file from ListenerFile made the socket blocking")
	}
}

func TestFileListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	// A bare descriptor, as a child inherits it: FileListener owns it.
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	got, err := FileListener(fd, "listen")
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if got.Addr().String() != ln.Addr().String() {
		t.Fatalf("inherited listener on %s, want %s", got.Addr(), ln.Addr())
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
		t.Fatalf("fd %d still open: FileListener keeps a duplicate and must close the original", fd)
	}

	regular, err := os.CreateTemp(t.TempDir(), "file")
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	connFile, err := conn.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer connFile.Close()
	unused := 1000 // far above anything this test process has open
	for _, tc := range []struct {
		name string
		fd   int
		want string
	}{
		{"Stdin", 0, "3 or above"},
		{"Closed", unused, "not open"},
		{"RegularFile", int(regular.Fd()), "not a socket"},
		{"NotListening", int(connFile.Fd()), "not listening"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ln, err := FileListener(tc.fd, "listen"); err == nil || !strings.Contains(err.Error(), tc.want) {
				if ln != nil {
					ln.Close()
				}
				t.Fatalf("fd %d: %v, want an error with %q", tc.fd, err, tc.want)
			}
		})
	}
}

// TestLBHandOverInheritedSockets is a balancer restart as the supervisor does
// it: this test holds the listening sockets, as the supervisor would, and
// hands both to two `posterctl lb` processes through ExtraFiles. Under steady
// load, the first is stopped with SIGTERM once the second answers: no
// connection is refused or reset, no request fails, and the second serves
// on. Each request is on a connection of its own, so what is tested is the
// accept queue; the load generator never retries.
func TestLBHandOverInheritedSockets(t *testing.T) {
	be := testBackend(t, "a", nil)
	pub, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	health, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer health.Close()
	files := make([]*os.File, 0, 2)
	for _, l := range []net.Listener{pub, health} {
		f, err := ListenerFile(l)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
	}
	port, healthPort := pub.Addr().(*net.TCPAddr).Port, health.Addr().(*net.TCPAddr).Port
	startGen := func() *clitest.Process {
		cmd := exec.Command(posterctlBin, "--log-format", "json", "lb", "--host", "127.0.0.1",
			"--port", strconv.Itoa(port), "--health-port", strconv.Itoa(healthPort),
			"--listen-fd", "3", "--health-listen-fd", "4", "--backend", hostport(be))
		cmd.ExtraFiles = files
		return clitest.StartCmd(t, cmd)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	healthURL := fmt.Sprintf("http://127.0.0.1:%d/health", healthPort)
	waitPID := func(p *clitest.Process) {
		t.Helper()
		clitest.Eventually(t, 30*time.Second, func() error {
			select {
			case <-p.Done():
				t.Fatalf("lb exited: %s", p.Output())
			default:
			}
			resp, err := client.Get(healthURL)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var h lbapi.Health
			if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
				return err
			}
			if h.PID != p.Pid() {
				return fmt.Errorf("answered by pid %d, want %d", h.PID, p.Pid())
			}
			return nil
		})
	}
	first := startGen()
	waitPID(first)

	var ok, failed atomic.Int64
	var errMu sync.Mutex
	var errs []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	addr := pub.Addr().String()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := oneShotGET(addr); err != nil {
					failed.Add(1)
					errMu.Lock()
					if len(errs) < 5 {
						errs = append(errs, err.Error())
					}
					errMu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}()
	}
	// Load flows through the first generation.
	waitCount := func(n int64) {
		t.Helper()
		clitest.Eventually(t, 20*time.Second, func() error {
			if ok.Load() < n {
				return fmt.Errorf("%d requests so far", ok.Load())
			}
			return nil
		})
	}
	waitCount(200)
	second := startGen()
	waitPID(second)
	before := ok.Load()
	if err := first.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.Done():
	case <-time.After(15 * time.Second):
		// A stuck stop is best explained by where it is stuck.
		first.Signal(syscall.SIGQUIT)
		<-first.Done()
		out := first.Output()
		t.Fatalf("first lb still running 15 s after SIGTERM; its goroutines:\n%s", out[max(0, strings.Index(out, "goroutine ")):])
	}
	if code := first.Wait(t, time.Second); code != 0 {
		t.Fatalf("first lb exit %d: %s", code, first.Output())
	}
	// Served on by the second alone.
	waitCount(ok.Load() + 500)
	close(stop)
	wg.Wait()
	t.Logf("%d requests (%d after the hand-over began), %d failed", ok.Load(), ok.Load()-before, failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed during the hand-over, e.g. %q", failed.Load(), errs)
	}
	for range 5 {
		var h lbapi.Health
		resp, err := client.Get(healthURL)
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if h.PID != second.Pid() {
			t.Fatalf("/health answered by pid %d after the first exited, want %d", h.PID, second.Pid())
		}
	}
	if !strings.Contains(second.Output(), `"listen_fd":3`) {
		t.Fatalf("second lb did not log its inherited socket:\n%s", second.Output())
	}
	if err := second.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := second.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("second lb exit %d: %s", code, second.Output())
	}
}

// oneShotGET sends one GET on a new connection and reads the whole answer;
// any error, or a status other than 200, is a failure. It never retries.
func oneShotGET(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "a" {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return nil
}

func TestLBCommandBadListenFD(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"Stdout", []string{"--listen-fd", "1"}, 2, "--listen-fd 1: want an inherited descriptor, 3 or above"},
		{"Same", []string{"--listen-fd", "3", "--health-listen-fd", "3"}, 2, "they must differ"},
		{"NotOpen", []string{"--listen-fd", "9"}, 1, "listen fd 9: not open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := clitest.Run(t, 30*time.Second, posterctlBin, append([]string{"lb", "--backend", "127.0.0.1:1",
				"--port", strconv.Itoa(clitest.FreePort(t)), "--health-port", strconv.Itoa(clitest.FreePort(t))}, tc.args...)...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output %q; want exit %d mentioning %q", code, out, tc.code, tc.want)
			}
		})
	}
}

// ListenerFile, the supervisor's way to hand a socket to a child, returns a duplicate of ln's socket to hand to a child through
// exec.Cmd.ExtraFiles, for the child to serve with FileListener.
//
// Use it rather than (*net.TCPListener).File: exec calls Fd on every extra
// file, and Fd on a File from the net package switches the descriptor to
// blocking mode. The mode belongs to the socket, shared by every process
// that holds it, so a balancer already serving on it would then block in
// accept(2) outside Go's poller, where closing the listener cannot wake it:
// its graceful stop hangs. A File made here by os.NewFile leaves the mode
// alone.
func ListenerFile(ln net.Listener) (*os.File, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("listener %s has no descriptor", ln.Addr())
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", ln.Addr(), err)
	}
	dup := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("listener %s: %w", ln.Addr(), err)
	}
	if derr != nil {
		return nil, fmt.Errorf("duplicate listener %s: %w", ln.Addr(), derr)
	}
	return os.NewFile(uintptr(dup), "listener "+ln.Addr().String()), nil
}
