package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/posterctl/posterctl/supervisor"
	"github.com/shirou/gopsutil/v3/process"
)

const startLimit = 30 * time.Second

func TestUpStatusDown(t *testing.T) {
	c := newCluster(t)
	// The acceptance limit. Everywhere else start-up time is not the
	// subject, so a loaded machine gets more room.
	readyIn := c.up(5 * time.Second)

	st := c.statusCLI()
	sup := supervisor.Identity{Pid: st.Supervisor.Pid, CreateTime: st.Supervisor.CreateTime}
	if !alive(sup) {
		t.Fatalf("supervisor %d not alive", sup.Pid)
	}
	var ids []supervisor.Identity
	for _, name := range []string{"lb", "backend-1", "backend-2"} {
		ch := child(st, name)
		if ch.State != supervisor.Running || ch.Pid == 0 {
			t.Fatalf("%s: state %q pid %d, want running", name, ch.State, ch.Pid)
		}
		if !alive(identity(ch)) {
			t.Fatalf("%s: pid %d not alive", name, ch.Pid)
		}
		p, _ := process.NewProcess(int32(ch.Pid))
		if ppid, _ := p.Ppid(); int(ppid) != sup.Pid {
			t.Fatalf("%s: parent %d, want the supervisor %d", name, ppid, sup.Pid)
		}
		ids = append(ids, identity(ch))
	}
	t.Logf("measured: up -d to ready %v; RSS supervisor %s, lb %s, backend-1 %s, backend-2 %s",
		readyIn.Round(time.Millisecond), rss(sup.Pid), rss(ids[0].Pid), rss(ids[1].Pid), rss(ids[2].Pid))

	resp, err := noRetryClient().Get(c.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "<html") {
		t.Fatalf("GET / through the LB: %d %.200s", resp.StatusCode, page)
	}

	out, _, code := c.run(10*time.Second, "status", "--run-dir", c.runDir)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("supervisor pid %d", sup.Pid)) ||
		!strings.Contains(out, "NAME") || !strings.Contains(out, "backend-2") {
		t.Fatalf("status table: exit %d\n%s", code, out)
	}

	begun := time.Now()
	out, errOut, code := c.run(30*time.Second, "down", "--run-dir", c.runDir)
	if code != 0 {
		t.Fatalf("down: exit %d %s%s", code, out, errOut)
	}
	t.Logf("measured: down to every child gone %v", time.Since(begun).Round(time.Millisecond))
	for _, id := range append(ids, sup) {
		if alive(id) {
			t.Errorf("pid %d alive after down returned", id.Pid)
		}
	}
	if _, err := os.Stat(filepath.Join(c.runDir, supervisor.SocketName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after down: %v", err)
	}
	out, errOut, code = c.run(10*time.Second, "status", "--run-dir", c.runDir)
	if code != 3 || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "no cluster is running") {
		t.Errorf("status after down: exit %d stdout %q stderr %q, want 3 and one line", code, out, errOut)
	}
	if out, errOut, code = c.run(10*time.Second, "down", "--run-dir", c.runDir); code != 0 || !strings.Contains(out, "no cluster is running") {
		t.Errorf("second down: exit %d %s%s", code, out, errOut)
	}
}

func TestCrashRestartUnderLoad(t *testing.T) {
	c := newCluster(t)
	c.up(startLimit)
	// On a fresh store one backend sometimes loses the race to migrate it
	// and is restarted once at start-up (an app/sqlite issue, reported);
	// kill one that has not been restarted, so that the count is exact.
	st := c.status()
	name := "backend-1"
	if child(st, name).Restarts != 0 {
		name = "backend-2"
		t.Logf("backend-1 was restarted at start-up (%s); killing backend-2", child(st, "backend-1").LastExit)
	}
	before := child(st, name)
	if before.Restarts != 0 {
		t.Fatalf("both backends restarted at start-up: %+v", st.Children)
	}
	// Steady GET load through the LB by one owned goroutine.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cl := noRetryClient()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := cl.Get(c.url("/api/posts"))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				continue
			}
			ok.Add(1)
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	clitest.Eventually(t, 5*time.Second, func() error {
		if ok.Load() < 20 {
			return errors.New("load not flowing")
		}
		return nil
	})

	if err := syscall.Kill(before.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// Within 2 s a new process runs; its readiness (state running) follows
	// as fast as the backend starts, which on a loaded machine with -race
	// binaries can itself take seconds.
	var after supervisor.ChildStatus
	clitest.Eventually(t, 2*time.Second, func() error {
		after = child(c.status(), name)
		if after.Pid == 0 || after.Pid == before.Pid || !alive(identity(after)) {
			return fmt.Errorf("%s state %s pid %d", name, after.State, after.Pid)
		}
		return nil
	})
	t.Logf("measured: kill -9 to new backend process %v", time.Since(killed).Round(time.Millisecond))
	clitest.Eventually(t, startLimit, func() error {
		after = child(c.status(), name)
		if after.State != supervisor.Running {
			return fmt.Errorf("%s state %s", name, after.State)
		}
		return nil
	})
	t.Logf("measured: kill -9 to new backend running (ready) %v", time.Since(killed).Round(time.Millisecond))
	if after.Restarts != 1 || after.LastExit != "signal killed" {
		t.Fatalf("restarts %d, last exit %q; want 1 after signal killed", after.Restarts, after.LastExit)
	}
	// Keep the load on until the LB sees the new backend healthy again.
	clitest.Eventually(t, 10*time.Second, func() error {
		if h := child(c.status(), name).Health; h != "healthy" {
			return fmt.Errorf("%s health %s", name, h)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	stop = make(chan struct{})
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d GETs failed during the crash; first: %v", n, n+ok.Load(), firstErr.Load())
	}
	t.Logf("%d GETs through the crash, none failed", ok.Load())
}

// slowPost logs in through the LB and starts a POST whose body is only half
// sent, so that the request is in flight until finish is called.
func slowPost(t *testing.T, c *cluster) (conn net.Conn, finish func() string) {
	t.Helper()
	cl := noRetryClient()
	creds := `{"username":"slowposter","password":"correct horse battery"}`
	resp, err := cl.Post(c.url("/api/register"), "application/json", strings.NewReader(creds))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = cl.Post(c.url("/api/login"), "application/json", strings.NewReader(creds))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(resp.Cookies()) == 0 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	cookie := resp.Cookies()[0]
	body := `{"content":"written while the cluster was stopping"}`
	conn, err = net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(c.port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// Chunked, so the LB's handler takes the request at once and then waits
	// for the rest of the body; a half-sent body with a Content-Length would
	// be held in its server's read phase, out of the handler's sight.
	fmt.Fprintf(conn, "POST /api/posts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nCookie: %s=%s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n%s\r\n",
		cookie.Name, cookie.Value, 10, body[:10])
	// In flight means the LB counts it.
	clitest.Eventually(t, 5*time.Second, func() error {
		resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", c.health))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		m, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(m), "posterctl_lb_in_flight_requests 1") {
			return errors.New("request not in flight at the LB yet")
		}
		return nil
	})
	return conn, func() string {
		if _, err := fmt.Fprintf(conn, "%x\r\n%s\r\n0\r\n\r\n", len(body)-10, body[10:]); err != nil {
			return err.Error()
		}
		line, err := readStatusLine(conn)
		if err != nil {
			return err.Error()
		}
		return line
	}
}

func startForeground(t *testing.T, c *cluster) (*clitest.Process, supervisor.Status) {
	t.Helper()
	p := clitest.StartCmd(t, c.cmd(append([]string{"up"}, c.flags()...)...))
	waitOutput(t, p, startLimit, "cluster ready")
	return p, c.status()
}

func childIDs(st supervisor.Status) []supervisor.Identity {
	var ids []supervisor.Identity
	for _, ch := range st.Children {
		ids = append(ids, identity(ch))
	}
	return ids
}

func TestForegroundInterruptDrains(t *testing.T) {
	c := newCluster(t)
	p, st := startForeground(t, c)
	_, finish := slowPost(t, c)
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	// The LB is draining while the request is still half sent; the backends
	// must still be up to answer it.
	waitOutput(t, p, 5*time.Second, "draining in-flight requests")
	if got := finish(); !strings.HasPrefix(got, "HTTP/1.1 201") {
		t.Fatalf("in-flight POST during the stop: %q, want 201\n%s", got, p.Output())
	}
	if code := p.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT, want 0\n%s", code, p.Output())
	}
	for _, id := range childIDs(st) {
		if alive(id) {
			t.Errorf("child %d alive after the supervisor exited", id.Pid)
		}
	}
	// The LB was stopped before any backend was asked to.
	out := p.Output()
	lbStopped := strings.Index(out, `"message":"stopped"`)
	backendStopping := strings.Index(out, "shutting down")
	if lbStopped < 0 || backendStopping < 0 || lbStopped > backendStopping {
		t.Errorf("LB stopped at %d, first backend stopping at %d: want the LB first\n%s", lbStopped, backendStopping, out)
	}
	if _, err := os.Stat(filepath.Join(c.runDir, supervisor.SocketName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after exit: %v", err)
	}
}

func TestForegroundSecondInterruptKills(t *testing.T) {
	c := newCluster(t)
	p, st := startForeground(t, c)
	slowPost(t, c) // never finished: the drain would wait for it
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, p, 5*time.Second, "draining in-flight requests")
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 5*time.Second); code != 130 {
		t.Fatalf("exit %d after the second SIGINT, want 130\n%s", code, p.Output())
	}
	for _, id := range childIDs(st) {
		if alive(id) {
			t.Errorf("child %d alive after the supervisor was interrupted twice", id.Pid)
		}
	}
}

func TestForegroundSIGTERMIsGraceful(t *testing.T) {
	c := newCluster(t)
	p, st := startForeground(t, c)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0\n%s", code, p.Output())
	}
	for _, id := range childIDs(st) {
		if alive(id) {
			t.Errorf("child %d alive after SIGTERM", id.Pid)
		}
	}
	// Foreground output is multiplexed with the children's names.
	for _, prefix := range []string{"backend-1 | ", "backend-2 | ", "lb        | "} {
		if !strings.Contains(p.Output(), prefix) {
			t.Errorf("no line prefixed %q in the output", prefix)
		}
	}
}

// A SIGKILLed supervisor can clean up nothing: its children must die with
// it, and its stale socket must not stop the next up.
func TestSupervisorKilled(t *testing.T) {
	c := newCluster(t)
	c.up(startLimit)
	st := c.status()
	sup := supervisor.Identity{Pid: st.Supervisor.Pid, CreateTime: st.Supervisor.CreateTime}
	if err := syscall.Kill(sup.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	clitest.Eventually(t, 2*time.Second, func() error {
		for _, id := range childIDs(st) {
			if alive(id) {
				return fmt.Errorf("child %d still alive", id.Pid)
			}
		}
		return nil
	})
	t.Logf("measured: supervisor SIGKILL to every child gone %v", time.Since(killed).Round(time.Millisecond))
	if _, err := os.Stat(filepath.Join(c.runDir, supervisor.SocketName)); err != nil {
		t.Fatalf("expected the dead supervisor's socket to be left behind: %v", err)
	}
	if _, _, code := c.run(10*time.Second, "status", "--run-dir", c.runDir); code != 3 {
		t.Fatalf("status with a stale socket: exit %d, want 3", code)
	}
	c.up(startLimit)
	if ch := child(c.status(), "lb"); ch.State != supervisor.Running {
		t.Fatalf("lb after up over a stale socket: %s", ch.State)
	}
}

func TestPortTaken(t *testing.T) {
	c := newCluster(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(c.basePort+1))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	self, _ := process.NewProcess(int32(os.Getpid()))
	name, _ := self.Name()
	out, errOut, code := c.run(10*time.Second, append([]string{"up", "-d"}, c.flags()...)...)
	msg := out + errOut
	if code == 0 {
		t.Fatalf("up with port %d taken: exit 0\n%s", c.basePort+1, msg)
	}
	for _, want := range []string{fmt.Sprintf("port %d", c.basePort+1), fmt.Sprintf("pid %d", os.Getpid()), name} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if left := c.leftovers(); len(left) > 0 {
		t.Fatalf("%d processes left after the refused up", len(left))
	}
	if _, err := os.Stat(c.dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused up created the data dir: %v", err)
	}
	// The foreground up says the same.
	out, errOut, code = c.run(10*time.Second, append([]string{"up"}, c.flags()...)...)
	if code == 0 || !strings.Contains(out+errOut, fmt.Sprintf("port %d", c.basePort+1)) {
		t.Fatalf("foreground up with a port taken: exit %d\n%s%s", code, out, errOut)
	}
}

// A store that can never open fails up before any child starts (the
// store is opened once first); a backend that fails the same way before it
// is ready (here: its --host is no address of this machine) is fatal after
// 3 failures, not after the restart limit (10 within 60 s: 43 s of backoff).
func TestBackendCannotStart(t *testing.T) {
	c := newCluster(t)
	// A directory where the database file should be: nothing, not even
	// root, can open it as SQLite.
	if err := os.MkdirAll(filepath.Join(c.dataDir, "poster.db"), 0o755); err != nil {
		t.Fatal(err)
	}
	begun := time.Now()
	out, errOut, code := c.run(10*time.Second, append([]string{"up", "-d"}, c.flags()...)...)
	if took := time.Since(begun); code == 0 || took > time.Second || !strings.Contains(errOut, filepath.Join(c.dataDir, "poster.db")+" is a directory") {
		t.Fatalf("up -d on a directory as store: exit %d after %v\n%s%s", code, took, out, errOut)
	}
	if left := c.leftovers(); len(left) > 0 {
		t.Fatalf("%d processes left after the failed up", len(left))
	}
	if err := os.Remove(filepath.Join(c.dataDir, "poster.db")); err != nil {
		t.Fatal(err)
	}
	// 192.0.2.1 (TEST-NET-1) is never an address of this machine: the
	// supervisor binds every backend's socket itself, so up says so before
	// starting anything.
	out, errOut, code = c.run(60*time.Second, append(append([]string{"up", "-d"}, c.flags()...), "--host", "192.0.2.1")...)
	if msg := out + errOut; code != 1 || !strings.Contains(msg, "192.0.2.1") || !strings.Contains(msg, "no interface of this machine has that address") {
		t.Fatalf("up -d with backends that cannot listen: exit %d, want 1 naming the address\n%s", code, msg)
	}
	if left := c.leftovers(); len(left) > 0 {
		t.Fatalf("%d processes left after the failed up", len(left))
	}
	// A proxy secret file cut short, which every backend would refuse on
	// every start, is refused by up itself before anything starts. (The
	// early-fatal rule for backends that fail the same way three times
	// before ready is TestEarlyFatal's, in package supervisor.)
	if err := os.MkdirAll(c.runDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.runDir, "proxy-secret"), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	begun = time.Now()
	out, errOut, code = c.run(60*time.Second, append([]string{"up", "-d"}, c.flags()...)...)
	msg := out + errOut
	if code != 1 || !strings.Contains(msg, "proxy-secret") || !strings.Contains(msg, "shorter than 16 bytes") {
		t.Fatalf("up -d with a short proxy secret: exit %d, want 1 naming the file and the cause\n%s", code, msg)
	}
	if took := time.Since(begun); took > 5*time.Second {
		t.Errorf("refused after %v, want at once", took)
	}
	t.Logf("fatal reported after %v:\n%s", time.Since(begun).Round(time.Millisecond), msg)
	if left := c.leftovers(); len(left) > 0 {
		t.Fatalf("%d processes left after the failed up", len(left))
	}
	if _, _, code := c.run(10*time.Second, "status", "--run-dir", c.runDir); code != 3 {
		t.Fatalf("status after failed up: exit %d, want 3", code)
	}
}

func TestBadInput(t *testing.T) {
	c := newCluster(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"DataDirUnderFile": {[]string{"--data-dir", filepath.Join(file, "data")}, "data dir"},
		"SamePorts":        {[]string{"--health-port", strconv.Itoa(c.port)}, "must differ"},
		"PortOverlap":      {[]string{"--port", strconv.Itoa(c.basePort + 1)}, "collides"},
		"NoBackends":       {[]string{"--backends", "0"}, "--backends"},
		"BadGrace":         {[]string{"--grace", "-1s"}, "--grace"},
		"UnknownConfig":    {[]string{"--config", writeFile(t, "nosuch: 1\n")}, `unknown setting "nosuch"`},
		"MissingConfig":    {[]string{"--config", filepath.Join(file, "x.yaml")}, "config"},
		"BadConfigType":    {[]string{"--config", writeFile(t, "backends: many\n")}, "backends"},
		"RunDirOpen":       {[]string{"--run-dir", openDir(t)}, "mode 0755"},
		"RemoteWithNoLB":   {[]string{"--no-lb", "--remote-backend", "127.0.0.1:1"}, "cannot go with --no-lb"},
		"BadRemote":        {[]string{"--remote-backend", "127.0.0.1"}, "want host:port"},
		"NoBackendsNoLB":   {[]string{"--no-lb", "--backends", "0"}, "nothing to run"},
		"BadHost":          {[]string{"--host", "nowhere"}, "--host"},
		"BadDB":            {[]string{"--db", "postgres://u:Sekr1tPw@h:x/db"}, "--db"},
	} {
		t.Run(name, func(t *testing.T) {
			for _, mode := range [][]string{{"up"}, {"up", "-d"}} {
				out, errOut, code := c.run(10*time.Second, append(append(mode, c.flags()...), tc.args...)...)
				if code == 0 || !strings.Contains(out+errOut, tc.want) {
					t.Fatalf("%v: exit %d, want non-zero and %q:\n%s%s", mode, code, tc.want, out, errOut)
				}
				if strings.Contains(out+errOut, "Sekr1tPw") {
					t.Fatalf("%v: the password is in the output:\n%s%s", mode, out, errOut)
				}
			}
			if _, err := os.Stat(filepath.Join(c.runDir, supervisor.SocketName)); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("bad input left a socket")
			}
			if left := c.leftovers(); len(left) > 0 {
				t.Fatalf("bad input left %d processes", len(left))
			}
		})
	}
}

// openDir is a directory others can read: not fit to hold the socket.
func openDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "posterctl.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAlreadyRunning(t *testing.T) {
	c := newCluster(t)
	c.up(startLimit)
	pid := c.status().Supervisor.Pid
	out, errOut, code := c.run(10*time.Second, append([]string{"up", "-d"}, c.flags()...)...)
	want := fmt.Sprintf("a cluster is already running (pid %d) — run posterctl down first", pid)
	if code == 0 || !strings.Contains(out+errOut, want) {
		t.Fatalf("second up: exit %d, want %q:\n%s%s", code, want, out, errOut)
	}
	if st := c.status(); st.Supervisor.Pid != pid {
		t.Fatalf("the refused up replaced the supervisor: %d", st.Supervisor.Pid)
	}
}

// The shipped config file loads, and flags override it.
func TestConfigFile(t *testing.T) {
	c := newCluster(t)
	cfg, err := os.ReadFile(filepath.Join("..", "..", "configs", "posterctl.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Our ports come from a second file; the shipped one must load as is.
	if out, errOut, code := c.run(10*time.Second, "up", "--config", filepath.Join("..", "..", "configs", "posterctl.yaml"), "--backends", "0"); code != 2 || !strings.Contains(out+errOut, "--backends 0") {
		t.Fatalf("shipped config with a bad override: exit %d\n%s%s (config:\n%s)", code, out, errOut, cfg)
	}
	file := writeFile(t, fmt.Sprintf("backends: 2\nport: %d\nhealth-port: %d\nbase-port: %d\nrun-dir: %s\ndata-dir: %s\ngrace: 3s\n",
		c.port, c.health, c.basePort, c.runDir, c.dataDir))
	out, errOut, code := c.run(startLimit, "up", "-d", "--config", file, "--backends", "1")
	if code != 0 {
		t.Fatalf("up -d --config: exit %d\n%s%s", code, out, errOut)
	}
	st := c.status()
	if len(st.Children) != 2 || child(st, "lb").Port != c.port || child(st, "backend-1").Port != c.basePort {
		t.Fatalf("config or override not applied: %+v", st.Children)
	}
}

// down when the socket is gone but the pid file names the live supervisor;
// and never a signal to a process that merely reuses the recorded pid.
func TestDownByPidFile(t *testing.T) {
	c := newCluster(t)
	c.up(startLimit)
	st := c.status()
	if err := os.Remove(filepath.Join(c.runDir, supervisor.SocketName)); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := c.run(30*time.Second, "down", "--run-dir", c.runDir)
	if code != 0 || !strings.Contains(out, "pid file") {
		t.Fatalf("down by pid file: exit %d %s%s", code, out, errOut)
	}
	for _, id := range append(childIDs(st), supervisor.Identity{Pid: st.Supervisor.Pid, CreateTime: st.Supervisor.CreateTime}) {
		if alive(id) {
			t.Errorf("pid %d alive after down by pid file", id.Pid)
		}
	}

	// A pid file naming this test process, with another create time.
	self, _ := supervisor.Identify(context.Background(), os.Getpid())
	pidFile := fmt.Sprintf("%d\n%d\n%s\n", self.Pid, self.CreateTime-1000, self.Name)
	if err := os.WriteFile(filepath.Join(c.runDir, supervisor.PidName), []byte(pidFile), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = c.run(10*time.Second, "down", "--run-dir", c.runDir)
	if code != 0 || !strings.Contains(out, "no cluster is running") {
		t.Fatalf("down with a reused pid: exit %d %s%s", code, out, errOut)
	}
}

// Ctrl+C while the backends are still failing to start: up gives up at once,
// kills what it started and says so.
func TestInterruptDuringStartup(t *testing.T) {
	c := newCluster(t)
	// Backends that are never ready in time (1 ms) are killed and wait 2 s
	// before their next try; the store itself is fine.
	p := clitest.StartCmd(t, c.cmd(append(append([]string{"up"}, c.flags()...), "--ready-timeout", "1ms", "--restart-backoff-min", "2s", "--restart-backoff-max", "2s")...))
	waitOutput(t, p, startLimit, "restarting")
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 10*time.Second); code != 130 || !strings.Contains(p.Output(), "interrupted during start-up") {
		t.Fatalf("exit %d, want 130 and a message\n%s", code, p.Output())
	}
	if left := c.leftovers(); len(left) > 0 {
		t.Fatalf("%d processes left after an interrupted start", len(left))
	}
}
