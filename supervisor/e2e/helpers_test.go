package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app/postgres/pgtest"
	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/posterctl/posterctl/supervisor"
	"github.com/shirou/gopsutil/v3/process"
	"go.uber.org/goleak"
)

var bin string

func TestMain(m *testing.M) {
	path, cleanup, err := clitest.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = path
	// `go test` without -v hides skip messages; this line is always seen.
	if why := pgtest.SkipReason(); why != "" && !pgtest.InCI() {
		fmt.Fprintln(os.Stderr, "supervisor/e2e: the two-machine PostgreSQL test is skipped:", why)
	}
	code := m.Run()
	cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// markEnv is set on every posterctl a test starts; children inherit it, so
// a scan of the process table finds anything a test left behind.
const markEnv = "POSTERCTL_E2E_MARK"

// raceEnv drops the race runtime's 1 s sleep at exit (atexit_sleep_ms),
// which otherwise adds a second to every process that stops (4 s per down)
// and blurs the stop timings; races are still reported.
const raceEnv = "GORACE=atexit_sleep_ms=0"

// cluster is one test's cluster: its ports, dirs and marker.
type cluster struct {
	t                      *testing.T
	bin                    string // the posterctl this cluster runs
	runDir, dataDir, mark  string
	port, health, basePort int
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{
		t:       t,
		bin:     bin,
		runDir:  filepath.Join(dir, "run"),
		dataDir: filepath.Join(dir, "data"),
		mark:    fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano()),
		port:    clitest.FreePort(t),
		health:  clitest.FreePort(t),
	}
	c.basePort = freePair(t)
	t.Cleanup(func() {
		// Whatever happened, stop what is left, then prove nothing is.
		c.run(30*time.Second, "down", "--grace", "2s", "--run-dir", c.runDir)
		for _, p := range c.leftovers() {
			_ = p.Kill()
			t.Errorf("process left behind: pid %d %v", p.Pid, cmdline(p))
		}
	})
	return c
}

// freePair finds a port P with P+1 free as well, for two backends.
func freePair(t *testing.T) int { return freePairTB(t) }

func portFree(p int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func (c *cluster) flags() []string {
	return []string{"--run-dir", c.runDir, "--data-dir", c.dataDir,
		"--port", strconv.Itoa(c.port), "--health-port", strconv.Itoa(c.health), "--base-port", strconv.Itoa(c.basePort)}
}

func (c *cluster) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), markEnv+"="+c.mark, raceEnv)
	return cmd
}

// run runs posterctl to completion and returns stdout, stderr and the exit code.
func (c *cluster) run(timeout time.Duration, args ...string) (string, string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(os.Environ(), markEnv+"="+c.mark, raceEnv)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		c.t.Fatalf("posterctl %v did not finish within %v:\n%s%s", args, timeout, stdout.String(), stderr.String())
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		c.t.Fatalf("posterctl %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// up runs `up -d` and fails unless it is ready within limit.
func (c *cluster) up(limit time.Duration, extra ...string) time.Duration {
	c.t.Helper()
	begun := time.Now()
	out, errOut, code := c.run(limit, append(append([]string{"up", "-d"}, c.flags()...), extra...)...)
	took := time.Since(begun)
	if code != 0 {
		c.t.Fatalf("up -d: exit %d\n%s%s", code, out, errOut)
	}
	return took
}

// status asks the control socket directly: polling through the CLI would
// add a process start to every poll and blur the timings.
func (c *cluster) status() supervisor.Status {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := supervisor.NewClient(c.runDir)
	defer cl.CloseIdleConnections()
	st, err := cl.Status(ctx)
	if err != nil {
		c.t.Fatalf("status: %v", err)
	}
	return st
}

// statusCLI is `posterctl status --json`.
func (c *cluster) statusCLI() supervisor.Status {
	c.t.Helper()
	out, errOut, code := c.run(10*time.Second, "status", "--json", "--run-dir", c.runDir)
	if code != 0 {
		c.t.Fatalf("status --json: exit %d: %s", code, errOut)
	}
	var st supervisor.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

func child(st supervisor.Status, name string) supervisor.ChildStatus {
	for _, c := range st.Children {
		if c.Name == name {
			return c
		}
	}
	return supervisor.ChildStatus{}
}

// leftovers lists the live processes carrying this cluster's marker.
func (c *cluster) leftovers() []*process.Process {
	procs, err := process.Processes()
	if err != nil {
		c.t.Fatalf("list processes: %v", err)
	}
	var out []*process.Process
	for _, p := range procs {
		env, err := p.Environ()
		if err != nil || !containsString(env, markEnv+"="+c.mark) {
			continue
		}
		if st, err := p.Status(); err != nil || (len(st) > 0 && st[0] == process.Zombie) {
			continue // gone meanwhile, or exited and waiting to be reaped
		}
		out = append(out, p)
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func cmdline(p *process.Process) string {
	s, _ := p.Cmdline()
	return s
}

func alive(id supervisor.Identity) bool { return id.Alive(context.Background()) }

func identity(c supervisor.ChildStatus) supervisor.Identity {
	return supervisor.Identity{Pid: c.Pid, CreateTime: c.CreateTime}
}

// noRetryClient never retries behind the test's back: without keep-alive
// there is no reused connection for net/http to retry on.
func noRetryClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

func (c *cluster) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", c.port, path)
}

// waitOutput polls a process's output for substr.
func waitOutput(t *testing.T, p *clitest.Process, timeout time.Duration, substr string) {
	t.Helper()
	clitest.Eventually(t, timeout, func() error {
		if !strings.Contains(p.Output(), substr) {
			return fmt.Errorf("no %q in output:\n%s", substr, p.Output())
		}
		return nil
	})
}

// rss reads a process's resident set size for the measurements in the log.
func rss(pid int) string {
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		return "?"
	}
	m, err := p.MemoryInfo()
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", float64(m.RSS)/(1<<20))
}

// readStatusLine reads the status line of a raw HTTP response.
func readStatusLine(conn net.Conn) (string, error) {
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}
