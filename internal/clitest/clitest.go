// Package clitest drives the real posterctl binary from tests: it builds the
// binary once, hands out free loopback ports, starts processes that are always
// stopped by pid, and polls conditions against a deadline instead of sleeping.
package clitest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BinaryEnv names a prebuilt posterctl binary; `make test` sets it so that the
// packages under test share one build instead of each compiling their own.
const BinaryEnv = "POSTERCTL_TEST_BIN"

// Build returns the path of a posterctl binary built from this checkout. Call
// it from TestMain; cleanup removes the build directory (a no-op when the
// binary came from BinaryEnv).
func Build() (path string, cleanup func(), err error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", nil, fmt.Errorf("%s: %w", BinaryEnv, err)
		}
		return p, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "posterctl-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	path = filepath.Join(dir, "posterctl")
	args := []string{"build", "-o", path}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/posterctl")
	cmd := exec.Command("go", args...)
	cmd.Dir = moduleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	return path, cleanup, nil
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	// Drawn at random below the kernel's ephemeral range: the outgoing
	// connections of a load test running beside this one take ports from
	// that range, and would take this one, or the ports just above it that
	// a cluster's later backends (scale) get, between the check and the
	// bind. A port the kernel hands out for :0 also tends to be handed out
	// again at once, so two calls could name the same port.
	top := ephemeralLow() - 100
	for range 1000 {
		p := freePortFloor + rand.IntN(top-freePortFloor)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			l.Close()
			return p
		}
	}
	tb.Fatalf("free port: none found in %d-%d", freePortFloor, top)
	return 0
}

// freePortFloor keeps clear of the well-known and registered ports that
// services on this machine may use (PostgreSQL's 5432, the app's 3000s).
const freePortFloor = 10000

// ephemeralLow is the bottom of the kernel's range for outgoing ports.
func ephemeralLow() int {
	const fallback = 32768 // Linux's default
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return fallback
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < freePortFloor+1000 {
		return fallback
	}
	return n
}

// Eventually polls cond every 20 ms until it returns nil or timeout passes,
// then fails the test with the last error.
func Eventually(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met within %v: %v", timeout, err)
		}
		<-tick.C
	}
}

// GetOK is nil when a GET of url through client answers 200, the usual
// condition an Eventually waits for on a health port.
func GetOK(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}

// Process is a started child whose output is captured. It is stopped by its
// pid (SIGKILL to its process group) when the test ends, if still running.
type Process struct {
	Cmd  *exec.Cmd
	done chan struct{}

	mu  sync.Mutex
	out bytes.Buffer
}

// Start runs bin with args in its own process group and registers cleanup.
func Start(tb testing.TB, bin string, args ...string) *Process {
	tb.Helper()
	return StartCmd(tb, exec.Command(bin, args...))
}

// StartCmd starts a prepared command (for custom Env or Dir).
func StartCmd(tb testing.TB, cmd *exec.Cmd) *Process {
	tb.Helper()
	p := &Process{Cmd: cmd, done: make(chan struct{})}
	cmd.Stdout = (*lockedWriter)(p)
	cmd.Stderr = (*lockedWriter)(p)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %v: %v", cmd.Args, err)
	}
	go func() {
		_ = cmd.Wait() // the exit status stays in cmd.ProcessState
		close(p.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
	return p
}

type lockedWriter Process

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Write(b)
}

// Pid is the process id.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Output returns everything the process wrote to stdout and stderr so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Signal sends sig to the process (not its group).
func (p *Process) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Done is closed when the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits up to timeout for the process to exit and returns its exit code
// (-1 when killed by a signal). It fails the test on timeout.
func (p *Process) Wait(tb testing.TB, timeout time.Duration) int {
	tb.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		tb.Fatalf("%v still running after %v; output:\n%s", p.Cmd.Args, timeout, p.Output())
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Run runs bin to completion with a time limit and returns its combined
// output and exit code.
func Run(tb testing.TB, timeout time.Duration, bin string, args ...string) (string, int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		tb.Fatalf("%v did not finish within %v; output:\n%s", args, timeout, out)
	}
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			tb.Fatalf("run %v: %v", args, err)
		}
	}
	return string(out), cmd.ProcessState.ExitCode()
}
