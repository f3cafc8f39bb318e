package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/posterctl/posterctl/lbapi"
	"github.com/posterctl/posterctl/supervisor"
)

// nobody is the unprivileged uid and gid the "another user" tests use.
const nobody = 65534

// asNobody returns argv that runs argv as uid/gid 65534 with no groups, or
// skips the test where that cannot be done.
func asNobody(t *testing.T, argv ...string) []string {
	t.Helper()
	pre := []string{"setpriv", "--reuid", strconv.Itoa(nobody), "--regid", strconv.Itoa(nobody), "--clear-groups"}
	if out, err := exec.Command(pre[0], append(pre[1:], "true")...).CombinedOutput(); err != nil {
		t.Skipf("cannot run a process as another user (setpriv: %v %s): skipping", err, strings.TrimSpace(string(out)))
	}
	return append(pre, argv...)
}

// victim starts a `sleep` of the test's own: the process a planted pid file
// points the client commands at. It must outlive every command.
func victim(t *testing.T) supervisor.Identity {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	var id supervisor.Identity
	clitest.Eventually(t, 5*time.Second, func() error {
		var err error
		id, err = supervisor.Identify(context.Background(), cmd.Process.Pid)
		return err
	})
	return id
}

// plantRunDir makes dir (mode perm) with a pid file describing id exactly,
// create time and name included.
func plantRunDir(t *testing.T, dir string, perm os.FileMode, id supervisor.Identity) {
	t.Helper()
	if err := os.MkdirAll(dir, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, perm); err != nil {
		t.Fatal(err)
	}
	pid := fmt.Sprintf("%d\n%d\n%s\n", id.Pid, id.CreateTime, id.Name)
	if err := os.WriteFile(filepath.Join(dir, supervisor.PidName), []byte(pid), 0o600); err != nil {
		t.Fatal(err)
	}
}

// chownNobody gives dir and what it holds to another user, or skips.
func chownNobody(t *testing.T, dir string) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, nobody, nobody)
	})
	if err != nil {
		t.Skipf("cannot give a dir to another user (%v): skipping", err)
	}
}

// clientCommands are every command that uses an existing run dir.
var clientCommands = [][]string{{"down", "--grace", "1s"}, {"status"}, {"logs"}, {"restart"}, {"scale", "2"}}

// runClient runs posterctl with env added; it returns stdout, stderr, code.
func runClient(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), append([]string{raceEnv}, env...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("posterctl %v did not finish: %s%s", args, stdout.String(), stderr.String())
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

func TestClientCommandsRefuseForeignRunDir(t *testing.T) {
	v := victim(t)
	withoutXDG := func(t *testing.T) {
		t.Setenv("XDG_RUNTIME_DIR", "")
		os.Unsetenv("XDG_RUNTIME_DIR") // restored by Setenv's cleanup
	}
	cases := []struct {
		name string
		// setup returns the run dir to pass (as --run-dir, or through
		// POSTERCTL_RUN_DIR when env is set) and what the refusal must say.
		setup func(t *testing.T) (dir, want string)
		env   bool
	}{
		{"OtherUsersDir", func(t *testing.T) (string, string) {
			dir := filepath.Join(t.TempDir(), "run")
			plantRunDir(t, dir, 0o700, v)
			chownNobody(t, dir)
			return dir, fmt.Sprintf("belongs to uid %d", nobody)
		}, false},
		{"Symlink", func(t *testing.T) (string, string) {
			real := filepath.Join(t.TempDir(), "real")
			plantRunDir(t, real, 0o700, v) // ours and 0700: only the link is wrong
			link := filepath.Join(t.TempDir(), "link")
			if err := os.Symlink(real, link); err != nil {
				t.Fatal(err)
			}
			return link, "is a symlink"
		}, false},
		{"OpenToOthers", func(t *testing.T) (string, string) {
			dir := filepath.Join(t.TempDir(), "run")
			plantRunDir(t, dir, 0o777, v)
			return dir, "has mode 0777"
		}, false},
		// What issue 12 saw: XDG_RUNTIME_DIR unset, and another user had
		// made /tmp/posterctl-<uid> first. A temp dir of that shape stands
		// in for the real path, through POSTERCTL_RUN_DIR.
		{"PrecreatedTmpDirNoXDG", func(t *testing.T) (string, string) {
			withoutXDG(t)
			dir := filepath.Join(t.TempDir(), fmt.Sprintf("posterctl-%d", os.Getuid()))
			plantRunDir(t, dir, 0o755, v)
			chownNobody(t, dir)
			return dir, fmt.Sprintf("belongs to uid %d", nobody)
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, want := tc.setup(t)
			for _, args := range clientCommands {
				var env []string
				if tc.env {
					env = []string{"POSTERCTL_RUN_DIR=" + dir}
				} else {
					args = append(args[:1:1], append([]string{"--run-dir", dir}, args[1:]...)...)
				}
				out, errOut, code := runClient(t, env, args...)
				msg := strings.TrimSpace(errOut)
				if code != 1 || out != "" || strings.Count(msg, "\n") != 0 ||
					!strings.Contains(msg, args[0]+": refusing the run dir") || !strings.Contains(msg, want) {
					t.Errorf("posterctl %v: exit %d, stdout %q, stderr %q; want exit 1 and one line saying %q", args, code, out, msg, want)
				}
				if !v.Alive(context.Background()) {
					t.Fatalf("posterctl %v signalled the pid file's process %d", args, v.Pid)
				}
			}
		})
	}
}

// A run dir of our own whose pid file describes another program of ours,
// create time and name exact: down does not signal it, since it does not
// run posterctl.
func TestDownPidFileOfAnotherProgram(t *testing.T) {
	v := victim(t)
	dir := filepath.Join(t.TempDir(), "run")
	plantRunDir(t, dir, 0o700, v)
	_, errOut, code := runClient(t, nil, "down", "--grace", "1s", "--run-dir", dir)
	if code != 1 || !strings.Contains(errOut, "not posterctl") || !strings.Contains(errOut, "not signalling it") {
		t.Fatalf("down: exit %d, stderr %q; want a refusal naming the program", code, errOut)
	}
	if !v.Alive(context.Background()) {
		t.Fatalf("down signalled pid %d, which runs sleep", v.Pid)
	}
}

// squatter is a python3 program that, as another user, tries every few
// milliseconds to bind the port (on loopback and on every interface, with
// SO_REUSEPORT) and, if it ever gets it, answers as an impostor would.
const squatter = `
import signal, socket, sys, time
port = int(sys.argv[1])
tries, bound = 0, 0
def stop(*_):
    print("TRIES", tries, "BOUND", bound, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("READY", flush=True)
while True:
    for host in ("127.0.0.1", "0.0.0.0"):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            s.bind((host, port))
            s.listen(64)
        except OSError:
            s.close()
            tries += 1
            continue
        bound += 1
        print("GOT", host, flush=True)
        while True:
            c, _ = s.accept()
            c.recv(65536)
            body = b'{"status":"ok","pid":1}'
            c.sendall(b"HTTP/1.1 200 OK\r\nX-Backend: squatter\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            c.close()
    time.sleep(0.002)
`

func TestRestartPortNeverFreeForAnotherUser(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skipf("the squatter needs /usr/bin/python3 (%v): skipping", err)
	}
	argv := asNobody(t, "/usr/bin/python3", "-c", squatter)
	c := newCluster(t)
	c.up(startLimit, "--grace", "2s")
	port := c.basePort // backend-1's

	sq := exec.Command(argv[0], append(argv[1:], strconv.Itoa(port))...)
	stdout, err := sq.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	sq.Stderr = os.Stderr
	if err := sq.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	readDone := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 4096)
		once := sync.Once{}
		for {
			n, err := stdout.Read(buf)
			out.Write(buf[:n])
			if strings.Contains(out.String(), "READY") {
				once.Do(func() { close(ready) })
			}
			if err != nil {
				return
			}
		}
	}()
	stopSquatter := func() string {
		_ = sq.Process.Signal(syscall.SIGTERM) // fails once it has ended
		<-readDone
		sq.Wait()
		return out.String()
	}
	t.Cleanup(func() { stopSquatter() })
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("squatter did not start: %s", stopSquatter())
	}

	// Traffic through the LB all along, on keep-alive connections: every
	// answer must come from one of the cluster's backends.
	lbURL := fmt.Sprintf("http://127.0.0.1:%d/api/posts", c.port)
	stop := make(chan struct{})
	var mu sync.Mutex
	served := map[string]int{}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 10 * time.Second}
			defer cl.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := cl.Get(lbURL)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				served[resp.Header.Get("X-Backend")]++
				mu.Unlock()
			}
		}()
	}
	restartOut, _ := c.ctl("restart")
	// Once more by name, for backend-1 alone.
	_, _ = c.ctl("restart", "backend-1")
	close(stop)
	wg.Wait()

	// Straight to the port: the backend answers, not the squatter.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := stopSquatter()
	t.Logf("squatter: %s; answers: %v", strings.TrimSpace(got), served)
	m := regexp.MustCompile(`TRIES (\d+) BOUND (\d+)`).FindStringSubmatch(got)
	if strings.Contains(got, "GOT ") || m == nil || m[2] != "0" {
		t.Fatalf("the squatter bound backend-1's port during restart:\n%s\nrestart said:\n%s", got, restartOut)
	}
	if m[1] == "0" {
		t.Fatalf("the squatter never tried: %s", got)
	}
	if served["squatter"] > 0 || resp.Header.Get("X-Backend") != "backend-1" {
		t.Fatalf("the squatter answered: %v, port %d answered by %q", served, port, resp.Header.Get("X-Backend"))
	}
	if served["backend-1"] == 0 || served["backend-2"] == 0 {
		t.Fatalf("answers %v: want both backends to have served", served)
	}
}

// A rolling restart whose new generation never becomes ready leaves the
// address out of the LB's rotation, and status says why; a later restart
// that succeeds (of the now fatal backend, once the build is fixed) puts it
// back and clears the error.
func TestRestartFailedReadinessStaysDrained(t *testing.T) {
	c := newCluster(t)
	exe := ownBinary(t, c)
	c.up(startLimit, "--grace", "1s", "--ready-timeout", "3s")
	// The children run exe, which the test breaks; the commands the test
	// runs, and its clean-up, keep a working posterctl.
	c.bin = bin
	addr := fmt.Sprintf("127.0.0.1:%d", c.basePort)

	// A broken build: it exits at once, never answering /healthz.
	broken := exe + ".broken"
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho broken build >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(broken, exe); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := c.run(time.Minute, "restart", "--run-dir", c.runDir, "backend-1")
	if code != 1 || !strings.Contains(errOut, "restart backend-1") {
		t.Fatalf("restart with a broken build: exit %d\n%s%s", code, out, errOut)
	}
	st := c.statusCLI()
	b1 := child(st, "backend-1")
	if !strings.Contains(b1.LastError, "left drained") || b1.Health == lbapi.StateHealthy {
		t.Fatalf("status of backend-1 after the failed restart: %+v", b1)
	}
	if h := health(t, c, addr); h == nil || h.State != lbapi.StateDraining {
		t.Fatalf("backend-1 in the LB after the failed restart: %+v; want draining", h)
	}
	// The table says it too.
	table, _, _ := c.run(10*time.Second, "status", "--run-dir", c.runDir)
	if !strings.Contains(table, "backend-1: restart backend-1") {
		t.Fatalf("status table does not show the failure:\n%s", table)
	}

	// The broken build fails the same way on every start, so the run loop
	// gives backend-1 up (early-fatal rule); the LB keeps it drained, and a
	// restart once the build is fixed starts it again.
	clitest.Eventually(t, 30*time.Second, func() error {
		if s := child(c.status(), "backend-1"); s.State != supervisor.Fatal {
			return fmt.Errorf("backend-1 is %s", s.State)
		}
		return nil
	})
	install(t, exe)
	for range 20 {
		if b := getBackend(t, c); b != "backend-2" {
			t.Fatalf("a request went to %q while backend-1 is left drained", b)
		}
	}
	if h := health(t, c, addr); h == nil || h.State != lbapi.StateDraining {
		t.Fatalf("backend-1 in the LB while fatal: %+v; want still draining", h)
	}
	c.ctl("restart", "backend-1")
	if b1 := child(c.statusCLI(), "backend-1"); b1.LastError != "" || b1.Health != lbapi.StateHealthy {
		t.Fatalf("backend-1 after a restart that succeeded: %+v", b1)
	}
}

func getBackend(t *testing.T, c *cluster) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/posts", c.port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.Header.Get("X-Backend")
}

// health is the LB's view of the backend at addr.
func health(t *testing.T, c *cluster, addr string) *lbapi.BackendStatus {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", c.health, lbapi.PathHealth))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h lbapi.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	for i, b := range h.Backends {
		if strings.TrimPrefix(b.Address, "http://") == addr {
			return &h.Backends[i]
		}
	}
	return nil
}
