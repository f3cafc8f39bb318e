package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
)

// Server is a private PostgreSQL server in a temporary directory, on a free
// loopback port, owned by one test: stopping it disturbs nobody else.
type Server struct {
	// DSN reaches the server's "postgres" database as its superuser, with
	// a random password (so tests can check that it is never printed).
	DSN      string
	Password string
	Port     int

	bin  string // directory of initdb and postgres
	dir  string // data directory, socket and password file below it
	cred *syscall.Credential
	proc *clitest.Process

	settings []string
}

// StartServer creates a cluster with initdb and starts it. settings
// ("name=value") are passed as -c options after the defaults, which turn
// fsync off; a benchmark that wants real durability passes "fsync=on".
// Without the PostgreSQL server binaries it skips tb (fails it in CI). The
// server is stopped and its files removed when the test ends.
func StartServer(tb testing.TB, settings ...string) *Server {
	tb.Helper()
	bin, err := binDir()
	if err != nil {
		Unavailable(tb, err.Error())
	}
	s := &Server{bin: bin, Port: clitest.FreePort(tb), settings: settings}
	// PostgreSQL refuses to run as root; tests here often do.
	if os.Geteuid() == 0 {
		if s.cred, err = postgresUser(); err != nil {
			Unavailable(tb, err.Error())
		}
	}
	// Not t.TempDir: its parents are private to root, and the server runs
	// as another user.
	if s.dir, err = os.MkdirTemp("", "posterctl-pg-"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(s.dir) })
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			tb.Fatal(err)
		}
	}

	var pw [12]byte
	rand.Read(pw[:])
	s.Password = hex.EncodeToString(pw[:])
	pwFile := filepath.Join(s.dir, "pwfile")
	if err := os.WriteFile(pwFile, []byte(s.Password+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	if s.cred != nil {
		if err := os.Chown(pwFile, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			tb.Fatal(err)
		}
	}
	initdb := s.command(filepath.Join(bin, "initdb"), "-D", s.dataDir(), "-U", "postgres",
		"--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile="+pwFile,
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		tb.Fatalf("initdb: %v\n%s", err, out)
	}
	s.DSN = fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable", s.Password, s.Port)
	s.Start(tb)
	return s
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	// Keep the server's locale and libpq settings from the environment out.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

// Start runs the server and waits until it accepts connections.
func (s *Server) Start(tb testing.TB) {
	tb.Helper()
	if s.proc != nil {
		select {
		case <-s.proc.Done():
		default:
			tb.Fatal("pgtest: Start on a running server")
		}
	}
	// Durability is no concern for a throwaway cluster; fsync off keeps
	// the tests fast on a shared disk.
	args := []string{"-D", s.dataDir(), "-p", strconv.Itoa(s.Port), "-k", s.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"}
	for _, kv := range s.settings {
		args = append(args, "-c", kv)
	}
	s.proc = clitest.StartCmd(tb, s.command(filepath.Join(s.bin, "postgres"), args...))
	clitest.Eventually(tb, 30*time.Second, func() error {
		select {
		case <-s.proc.Done():
			tb.Fatalf("postgres exited during start-up:\n%s", s.proc.Output())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
		defer cancel()
		conn, err := connect(ctx, s.DSN)
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
}

// Stop shuts the server down the way an operator's "fast" stop does: open
// connections are terminated, and the port is closed before it returns.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	if err := s.proc.Signal(syscall.SIGINT); err != nil {
		tb.Fatalf("stop postgres: %v", err)
	}
	s.proc.Wait(tb, 30*time.Second)
}

// Freeze stops every process of the server with SIGSTOP: connections are
// still accepted by the kernel, but nothing answers, as when the network to
// the server is cut. Thaw undoes it. The frozen processes are killed at the
// end of the test if still frozen: a stopped child would otherwise hold the
// output pipe open forever.
//
// Signalling the process group is not enough: each backend process of
// PostgreSQL calls setsid() and so leaves the postmaster's group. The
// postmaster is stopped first, so that it forks nothing more, and its
// children are then stopped until a scan finds all of them stopped (a fork
// in progress when the postmaster got SIGSTOP still completes).
func (s *Server) Freeze(tb testing.TB) {
	tb.Helper()
	pm := s.proc.Pid()
	if err := syscall.Kill(pm, syscall.SIGSTOP); err != nil {
		tb.Fatalf("freeze postgres: %v", err)
	}
	tb.Cleanup(func() {
		for pid := range children(tb, pm) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	clitest.Eventually(tb, 10*time.Second, func() error {
		if st := state(pm); st != "T" {
			return fmt.Errorf("postmaster %d in state %q", pm, st)
		}
		var running []int
		for pid, st := range children(tb, pm) {
			if st != "T" {
				running = append(running, pid)
				// A child may have exited since the scan; that one is
				// frozen enough.
				_ = syscall.Kill(pid, syscall.SIGSTOP)
			}
		}
		if len(running) > 0 {
			return fmt.Errorf("children %v not stopped yet", running)
		}
		return nil
	})
}

// Thaw resumes a frozen server.
func (s *Server) Thaw(tb testing.TB) {
	tb.Helper()
	pm := s.proc.Pid()
	for pid := range children(tb, pm) {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	if err := syscall.Kill(pm, syscall.SIGCONT); err != nil {
		tb.Fatalf("thaw postgres: %v", err)
	}
}

// children maps the processes whose parent is ppid to their state letter
// (R, S, T, ...), from /proc.
func children(tb testing.TB, ppid int) map[int]string {
	tb.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		tb.Fatal(err)
	}
	kids := map[int]string{}
	for _, path := range stats {
		st, parent, ok := readStat(path)
		if !ok || parent != ppid {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(path))); err == nil {
			kids[pid] = st
		}
	}
	return kids
}

// state is the state letter of pid, or "" when it is gone.
func state(pid int) string {
	st, _, _ := readStat(fmt.Sprintf("/proc/%d/stat", pid))
	return st
}

// readStat reads state and parent from a /proc/PID/stat file: "pid (comm)
// state ppid ...", where comm may hold spaces and parentheses.
func readStat(path string) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, false // exited meanwhile
	}
	rest := string(b[bytes.LastIndexByte(b, ')')+1:])
	if _, err := fmt.Sscan(rest, &state, &ppid); err != nil {
		return "", 0, false
	}
	return state, ppid, true
}

// Output is what the server has logged since its last Start.
func (s *Server) Output() string { return s.proc.Output() }

// binDir finds the newest installed PostgreSQL server binaries: Debian keeps
// them off PATH, in /usr/lib/postgresql/<version>/bin.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) < version(dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if isExec(filepath.Join(dirs[i], "postgres")) && isExec(filepath.Join(dirs[i], "initdb")) {
			return dirs[i], nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if dir := filepath.Dir(p); isExec(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries (initdb, postgres) in /usr/lib/postgresql/*/bin or on PATH; install the postgresql package")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// postgresUser is the account the server runs as when the tests run as root.
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root and there is no postgres user to run the server as: %v", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}
