package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/rs/zerolog"
	"github.com/shirou/gopsutil/v3/process"
)

// fake returns the Spec of a helper child in the given mode on port.
func fake(name, mode string, port, stage int) Spec {
	return Spec{
		Name:     name,
		Path:     os.Args[0],
		Env:      []string{helperEnv + "=" + mode, helperPortEnv + "=" + strconv.Itoa(port)},
		Port:     port,
		ReadyURL: fmt.Sprintf("http://127.0.0.1:%d/healthz", port),
		Stage:    stage,
	}
}

// lines collects child output for assertions.
type lines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lines) Line(name string, line []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, "%s | %s\n", name, line)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newSup(t *testing.T, specs ...Spec) (*Supervisor, *lines) {
	t.Helper()
	out := &lines{}
	s, err := New(Config{
		Specs:        specs,
		RunDir:       runDir(t),
		Restart:      DefaultRestartPolicy(),
		ReadyTimeout: 10 * time.Second,
		Sink:         out,
	}, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, out
}

// runDir is a fresh run dir; t.TempDir itself has mode 0755, which a run
// dir must not have.
func runDir(t *testing.T) string { return filepath.Join(t.TempDir(), "run") }

func start(t *testing.T, s *Supervisor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
}

func childStatus(t *testing.T, s *Supervisor, name string) ChildStatus {
	t.Helper()
	for _, c := range s.Status(context.Background()).Children {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no child %q in status", name)
	return ChildStatus{}
}

func alive(pid int) bool {
	id, err := Identify(context.Background(), pid)
	return err == nil && id.Alive(context.Background())
}

func TestStartStop(t *testing.T) {
	s, out := newSup(t,
		fake("front", "serve", clitest.FreePort(t), 1),
		fake("b1", "serve", clitest.FreePort(t), 0),
		fake("b2", "serve", clitest.FreePort(t), 0),
	)
	start(t, s)

	st := s.Status(context.Background())
	if st.Supervisor.RSSBytes == 0 || st.Supervisor.Pid != os.Getpid() {
		t.Fatalf("supervisor status %+v", st.Supervisor)
	}
	if got := len(st.Children); got != 3 {
		t.Fatalf("%d children in status, want 3", got)
	}
	if st.Children[2].Name != "front" {
		t.Fatalf("stage order: %v", st.Children)
	}
	var pids []int
	for _, c := range st.Children {
		if c.State != Running || c.Pid == 0 {
			t.Fatalf("%s: state %s pid %d, want running", c.Name, c.State, c.Pid)
		}
		p, err := process.NewProcess(int32(c.Pid))
		if err != nil {
			t.Fatal(err)
		}
		if ppid, _ := p.Ppid(); int(ppid) != os.Getpid() {
			t.Fatalf("%s: parent %d, want %d", c.Name, ppid, os.Getpid())
		}
		if pgid, _ := syscall.Getpgid(c.Pid); pgid != c.Pid {
			t.Fatalf("%s: process group %d, want its own (%d)", c.Name, pgid, c.Pid)
		}
		pids = append(pids, c.Pid)
	}
	// RSS is there from the first status on; CPU % needs a second sample.
	if c := childStatus(t, s, "b1"); c.RSSBytes == 0 {
		t.Fatal("no RSS in the first status")
	}

	s.Stop(5 * time.Second)
	select {
	case <-s.Stopped():
	case <-time.After(10 * time.Second):
		t.Fatal("not stopped within 10 s")
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d still alive after stop", pid)
		}
	}
	for _, c := range s.Status(context.Background()).Children {
		if c.State != Exited || c.LastExit != "exit 0" {
			t.Errorf("%s: state %s last exit %q, want exited with exit 0 (graceful)", c.Name, c.State, c.LastExit)
		}
	}
	// The front stage stops before the backends are even signalled.
	o := out.String()
	if strings.Index(o, "front | draining") > strings.Index(o, "b1 | draining") {
		t.Errorf("backends drained before the front:\n%s", o)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(s.cfg.RunDir, SocketName)); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.cfg.RunDir, PidName)); !os.IsNotExist(err) {
		t.Errorf("pid file left after Close: %v", err)
	}
}

func TestRestartAfterCrash(t *testing.T) {
	s, _ := newSup(t, fake("b1", "serve", clitest.FreePort(t), 0))
	start(t, s)
	old := childStatus(t, s, "b1")
	if err := syscall.Kill(old.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	clitest.Eventually(t, 5*time.Second, func() error {
		c := childStatus(t, s, "b1")
		if c.State != Running || c.Pid == old.Pid {
			return fmt.Errorf("state %s pid %d", c.State, c.Pid)
		}
		if c.Restarts != 1 || c.LastExit != "signal killed" {
			return fmt.Errorf("restarts %d last exit %q, want 1 and signal killed", c.Restarts, c.LastExit)
		}
		return nil
	})
}

// A wrapper whose grandchild holds the port: killing the leader alone would
// leave the port taken and every restart failing with "address in use".
func TestRestartKillsGrandchildren(t *testing.T) {
	port := clitest.FreePort(t)
	s, out := newSup(t, fake("wrapped", "wrapper", port, 0))
	start(t, s)
	old := childStatus(t, s, "wrapped")
	var grandchild int
	clitest.Eventually(t, 5*time.Second, func() error {
		_, err := fmt.Sscanf(out.String()[strings.Index(out.String(), "grandchild"):], "grandchild %d", &grandchild)
		return err
	})
	if err := syscall.Kill(old.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	clitest.Eventually(t, 5*time.Second, func() error {
		c := childStatus(t, s, "wrapped")
		if c.State != Running || c.Pid == old.Pid {
			return fmt.Errorf("state %s pid %d", c.State, c.Pid)
		}
		return nil
	})
	if alive(grandchild) {
		t.Fatalf("grandchild %d of the crashed child survived", grandchild)
	}
}

func TestFatalAtStartup(t *testing.T) {
	out := &lines{}
	pol := DefaultRestartPolicy()
	pol.MinBackoff, pol.MaxBackoff, pol.Limit = time.Millisecond, 4*time.Millisecond, 3
	s, err := New(Config{
		Specs:        []Spec{fake("b1", "exit1-varied", clitest.FreePort(t), 0)},
		RunDir:       runDir(t),
		Restart:      pol,
		ReadyTimeout: 5 * time.Second,
		Sink:         out,
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Start(context.Background())
	var se *StartError
	if !errors.As(err, &se) {
		t.Fatalf("start: %v, want a StartError", err)
	}
	if se.Child != "b1" || !strings.Contains(se.Reason, "4 times") || !strings.Contains(se.Tail, "unable to open database file") {
		t.Fatalf("start error lacks child, count or output: %+v", se)
	}
	c := childStatus(t, s, "b1")
	if c.State != Fatal || c.Restarts != 3 || c.LastExit != "exit 1" {
		t.Fatalf("status %+v, want fatal after 3 restarts with exit 1", c)
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	s, _ := newSup(t, fake("stubborn", "ignore-term", clitest.FreePort(t), 0))
	start(t, s)
	pid := childStatus(t, s, "stubborn").Pid
	begun := time.Now()
	s.Stop(300 * time.Millisecond)
	select {
	case <-s.Stopped():
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not escalate")
	}
	if d := time.Since(begun); d < 300*time.Millisecond {
		t.Fatalf("killed after %v, before the grace period", d)
	}
	if c := childStatus(t, s, "stubborn"); c.LastExit != "signal killed" || alive(pid) {
		t.Fatalf("last exit %q alive %v, want killed", c.LastExit, alive(pid))
	}
	s.Stop(time.Second) // idempotent
	s.Kill()
}

func TestKillCutsGraceShort(t *testing.T) {
	s, _ := newSup(t, fake("stubborn", "ignore-term", clitest.FreePort(t), 0))
	start(t, s)
	s.Stop(time.Hour)
	s.Kill()
	select {
	case <-s.Stopped():
	case <-time.After(5 * time.Second):
		t.Fatal("Kill did not cut the grace period short")
	}
}

func TestPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	s, out := newSup(t, fake("b1", "serve", clitest.FreePort(t), 0), fake("b2", "serve", port, 0))
	err = s.Start(context.Background())
	var pe *PortInUseError
	if !errors.As(err, &pe) {
		t.Fatalf("start: %v, want PortInUseError", err)
	}
	if pe.Port != port || pe.Pid != os.Getpid() || pe.Holder == "" {
		t.Fatalf("got %+v, want port %d held by pid %d", pe, port, os.Getpid())
	}
	if !strings.Contains(err.Error(), strconv.Itoa(port)) || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Fatalf("message does not name port and pid: %v", err)
	}
	if out.String() != "" || s.sp != nil {
		t.Fatalf("a child was started: %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(s.cfg.RunDir, SocketName)); !os.IsNotExist(err) {
		t.Fatalf("socket created despite the failed check: %v", err)
	}
}

func TestAlreadyRunning(t *testing.T) {
	a, _ := newSup(t, fake("b1", "serve", clitest.FreePort(t), 0))
	start(t, a)
	b, err := New(Config{
		Specs:        []Spec{fake("b1", "serve", clitest.FreePort(t), 0)},
		RunDir:       a.cfg.RunDir,
		Restart:      DefaultRestartPolicy(),
		ReadyTimeout: time.Second,
		Sink:         &lines{},
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Start(context.Background())
	var ar *AlreadyRunningError
	if !errors.As(err, &ar) || ar.Pid != os.Getpid() {
		t.Fatalf("second start: %v, want AlreadyRunningError naming pid %d", err, os.Getpid())
	}
	if !strings.Contains(err.Error(), "run posterctl down first") {
		t.Fatalf("message: %v", err)
	}
	b.Close()
	// The refused one must not have taken the socket away from the live one.
	if _, err := NewClient(a.cfg.RunDir).Status(context.Background()); err != nil {
		t.Fatalf("first cluster's socket after refused start: %v", err)
	}
}

func TestStaleSocketIsReplaced(t *testing.T) {
	dir := runDir(t)
	if err := PrepareRunDir(dir); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, SocketName)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false) // what a SIGKILLed supervisor leaves behind
	l.Close()
	if _, err := NewClient(dir).Status(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("status on a stale socket: %v, want ErrNotRunning", err)
	}
	s, err := New(Config{
		Specs:        []Spec{fake("b1", "serve", clitest.FreePort(t), 0)},
		RunDir:       dir,
		Restart:      DefaultRestartPolicy(),
		ReadyTimeout: 10 * time.Second,
		Sink:         &lines{},
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start(t, s)
	if _, err := NewClient(dir).Status(context.Background()); err != nil {
		t.Fatalf("status after start over a stale socket: %v", err)
	}
}

func TestControlSocket(t *testing.T) {
	s, _ := newSup(t, fake("b1", "serve", clitest.FreePort(t), 0))
	start(t, s)
	fi, err := os.Stat(filepath.Join(s.cfg.RunDir, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(s.cfg.RunDir); di.Mode().Perm() != 0o700 {
		t.Errorf("run dir mode %v, want 0700", di.Mode().Perm())
	}
	cl := NewClient(s.cfg.RunDir)
	st, err := cl.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Supervisor.Pid != os.Getpid() || len(st.Children) != 1 || st.Children[0].State != Running {
		t.Fatalf("status over the socket: %+v", st)
	}
	pid := st.Children[0].Pid
	if err := cl.Down(context.Background(), 5*time.Second); err != nil {
		t.Fatalf("down: %v", err)
	}
	if alive(pid) {
		t.Fatal("down returned with the child alive")
	}
	if id, err := ReadPidFile(s.cfg.RunDir); err != nil || id.Pid != os.Getpid() {
		t.Fatalf("pid file: %+v %v", id, err)
	}
	s.Close()
	if _, err := cl.Status(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("status after close: %v, want ErrNotRunning", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Specs: []Spec{{Name: "a", Path: "/bin/true"}}, RunDir: "x", ReadyTimeout: time.Second, Sink: &lines{}, Restart: DefaultRestartPolicy()}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"NoSpecs":   func(c *Config) { c.Specs = nil },
		"NoRunDir":  func(c *Config) { c.RunDir = "" },
		"DupName":   func(c *Config) { c.Specs = append(c.Specs, c.Specs[0]) },
		"NoTimeout": func(c *Config) { c.ReadyTimeout = 0 },
		"BadPolicy": func(c *Config) { c.Restart.MinBackoff = 0 },
		"HealthURL": func(c *Config) { c.HealthURL = "http://127.0.0.1:4000/healthz" },
	} {
		t.Run(name, func(t *testing.T) {
			c := ok
			c.Specs = append([]Spec(nil), ok.Specs...)
			mut(&c)
			if err := c.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// A child that keeps crashing after start-up is given up; the rest of the
// cluster keeps running.
func TestFatalAfterReadyOthersKeepRunning(t *testing.T) {
	pol := DefaultRestartPolicy()
	pol.MinBackoff, pol.MaxBackoff, pol.Limit = time.Millisecond, time.Millisecond, 1
	s, err := New(Config{
		Specs:        []Spec{fake("b1", "serve", clitest.FreePort(t), 0), fake("b2", "serve", clitest.FreePort(t), 0)},
		RunDir:       runDir(t),
		Restart:      pol,
		ReadyTimeout: 10 * time.Second,
		Sink:         &lines{},
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start(t, s)
	b2 := childStatus(t, s, "b2").Pid
	for i := range 2 {
		pid := childStatus(t, s, "b1").Pid
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		clitest.Eventually(t, 10*time.Second, func() error {
			c := childStatus(t, s, "b1")
			want := Running
			if i == 1 {
				want = Fatal
			}
			if c.State != want || (want == Running && c.Pid == pid) {
				return fmt.Errorf("after kill %d: state %s pid %d, want %s", i+1, c.State, c.Pid, want)
			}
			return nil
		})
	}
	if c := childStatus(t, s, "b2"); c.State != Running || c.Pid != b2 || !alive(b2) {
		t.Fatalf("b2 after b1 went fatal: %+v", c)
	}
	select {
	case <-s.Stopped():
		t.Fatal("the supervisor stopped because one child went fatal")
	default:
	}
}

// A child that runs but never answers its readiness check is killed after
// the ready timeout, which counts as a crash.
func TestReadyTimeout(t *testing.T) {
	pol := DefaultRestartPolicy()
	pol.MinBackoff, pol.MaxBackoff, pol.Limit = time.Millisecond, time.Millisecond, 1
	s, err := New(Config{
		Specs:        []Spec{fake("b1", "unready", clitest.FreePort(t), 0)},
		RunDir:       runDir(t),
		Restart:      pol,
		ReadyTimeout: 300 * time.Millisecond,
		Sink:         &lines{},
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Start(context.Background())
	var se *StartError
	if !errors.As(err, &se) || !strings.Contains(se.Tail, "was not ready within 300ms") {
		t.Fatalf("start: %v, want a StartError naming the ready timeout", err)
	}
	if c := childStatus(t, s, "b1"); c.State != Fatal || c.LastExit != "signal killed" {
		t.Fatalf("status %+v, want fatal, killed", c)
	}
}

func TestControlDownBadGrace(t *testing.T) {
	s, _ := newSup(t, fake("b1", "serve", clitest.FreePort(t), 0))
	start(t, s)
	err := NewClient(s.cfg.RunDir).Down(context.Background(), -time.Second)
	if err == nil || !strings.Contains(err.Error(), "grace") {
		t.Fatalf("down with a negative grace: %v", err)
	}
	if c := childStatus(t, s, "b1"); c.State != Running {
		t.Fatalf("a refused down changed the child: %s", c.State)
	}
}
