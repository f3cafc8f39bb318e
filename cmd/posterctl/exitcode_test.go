package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/posterctl/posterctl/supervisor"
	"github.com/urfave/cli/v2"
)

// fakeSupervisor answers on runDir's control socket: GET /v1/status with
// status (500 when nil), anything else with 500, as a supervisor that has
// gone wrong would.
func fakeSupervisor(t *testing.T, runDir string, status *supervisor.Status) {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(runDir, supervisor.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/status" && status != nil {
			json.NewEncoder(w).Encode(status)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		json.NewEncoder(w).Encode(map[string]string{"error": "the fake supervisor refuses"})
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
}

// busyPort holds a listener on a free loopback port for the test's life.
func busyPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// runSplit runs the binary and returns its stdout, stderr and exit code.
func runSplit(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %q: %v", args, err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// cleanEnv is the test's environment without the variables that would
// point a command elsewhere than the test says.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "POSTERCTL_RUN_DIR", "POSTERCTL_DB", "NOTIFY_SOCKET":
		default:
			env = append(env, kv)
		}
	}
	return env
}

// Every command's usage errors exit 2, its failures 1 and, for the commands
// that talk to a cluster, "no cluster running" 3 (down: 0, nothing to do),
// each with one line on stderr.
func TestExitCodes(t *testing.T) {
	empty := privateDir(t)     // no cluster
	broken := privateDir(t)    // a supervisor that answers every request with 500
	answering := privateDir(t) // a foreground cluster: status answers, no logs
	fakeSupervisor(t, broken, nil)
	fakeSupervisor(t, answering, &supervisor.Status{Supervisor: supervisor.SupervisorStatus{Pid: 1}})
	file := filepath.Join(privateDir(t), "file")
	os.WriteFile(file, nil, 0o600)
	p := strconv.Itoa
	busy, free, free2, free3 := busyPort(t), clitest.FreePort(t), clitest.FreePort(t), clitest.FreePort(t)
	db := filepath.Join(privateDir(t), "poster.db")

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"NoCommand", []string{"frob"}, 2, `unknown command "frob"`},
		{"HelpTopic", []string{"help", "frob"}, 2, `unknown command "frob"`},
		{"GlobalFlag", []string{"--bogus", "status"}, 2, "-bogus"},
		{"GlobalValue", []string{"--log-level", "loud", "status", "--run-dir", empty}, 2, "--log-level"},

		{"UpFlag", []string{"up", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"UpValue", []string{"up", "--port", "abc"}, 2, `invalid value "abc"`},
		{"UpSetting", []string{"up", "--backends", "99"}, 2, "--backends"},
		{"UpListen", []string{"up", "--listen", "example.com"}, 2, "--listen"},
		{"UpArgs", []string{"up", "extra"}, 2, "unexpected arguments"},
		{"UpFailure", []string{"up", "--data-dir", filepath.Join(file, "data"), "--run-dir", privateDir(t),
			"--port", p(free), "--health-port", p(free2), "--base-port", p(free3)}, 1, "not a directory"},

		{"StatusFlag", []string{"status", "--bogus"}, 2, "-bogus"},
		{"StatusArgs", []string{"status", "extra"}, 2, "unexpected arguments"},
		{"StatusFailure", []string{"status", "--run-dir", broken}, 1, "fake supervisor refuses"},
		{"StatusNotRunning", []string{"status", "--run-dir", empty}, 3, "no cluster is running (run dir " + empty + ")"},

		{"DownFlag", []string{"down", "--bogus"}, 2, "-bogus"},
		{"DownValue", []string{"down", "--grace", "soon"}, 2, `invalid value "soon"`},
		{"DownGrace", []string{"down", "--grace", "-1s"}, 2, "--grace"},
		{"DownFailure", []string{"down", "--run-dir", broken}, 1, "fake supervisor refuses"},
		{"DownNotRunning", []string{"down", "--run-dir", empty}, 0, ""},

		{"RestartFlag", []string{"restart", "--bogus"}, 2, "-bogus"},
		{"RestartArgs", []string{"restart", "a", "b"}, 2, "at most one NAME"},
		{"RestartFailure", []string{"restart", "lb", "--run-dir", broken}, 1, "fake supervisor refuses"},
		{"RestartNotRunning", []string{"restart", "lb", "--run-dir", empty}, 3, "no cluster is running (run dir " + empty + ")"},

		{"ScaleFlag", []string{"scale", "--bogus", "2"}, 2, "-bogus"},
		{"ScaleNoN", []string{"scale"}, 2, "exactly one argument"},
		{"ScaleNotANumber", []string{"scale", "two"}, 2, `invalid N "two"`},
		{"ScaleNegative", []string{"scale", "--", "-1"}, 2, "invalid N -1: want 1 to 64 local backends, or from 0 when the cluster has remote backends"},
		{"ScaleNegativeNoDashes", []string{"scale", "-1", "--run-dir", empty}, 2, "invalid N -1"},
		{"ScaleTooMany", []string{"scale", "65", "--run-dir", empty}, 2, "invalid N 65"},
		{"ScaleFailure", []string{"scale", "3", "--run-dir", broken}, 1, "fake supervisor refuses"},
		{"ScaleNotRunning", []string{"scale", "4", "--run-dir", empty}, 3, "no cluster is running (run dir " + empty + ")"},

		{"LogsFlag", []string{"logs", "--bogus"}, 2, "-bogus"},
		{"LogsValue", []string{"logs", "-n", "-1"}, 2, "-n -1"},
		{"LogsMissingValue", []string{"logs", "backend-1", "-n"}, 2, "flag needs an argument: -n"},
		{"LogsArgs", []string{"logs", "a", "b"}, 2, "at most one NAME"},
		{"LogsFailure", []string{"logs", "--run-dir", answering}, 1, "runs in the foreground"},
		{"LogsNotRunning", []string{"logs", "backend-1", "-n", "5", "--run-dir", empty}, 3, "no cluster is running"},

		{"LBFlag", []string{"lb", "--bogus"}, 2, "-bogus"},
		{"LBValue", []string{"lb", "--port", "0"}, 2, "--port 0"},
		{"LBArgs", []string{"lb", "extra"}, 2, "unexpected argument"},
		{"LBFailure", []string{"lb", "--host", "127.0.0.1", "--port", p(busy), "--health-port", p(free), "--backend", "127.0.0.1:1"}, 1, ""},

		{"BackendFlag", []string{"backend", "--bogus"}, 2, "-bogus"},
		{"BackendValue", []string{"backend", "notaport"}, 2, `invalid port "notaport"`},
		{"BackendArgs", []string{"backend", "3001", "3002"}, 2, "too many arguments"},
		{"BackendFailure", []string{"backend", p(busy), "--db", db}, 1, fmt.Sprintf("port %d is already in use", busy)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runSplit(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("posterctl %q: exit %d, stderr:\n%s\nwant exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
			}
			if tc.code == 2 && strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Errorf("a usage error takes one line, not:\n%s", stderr)
			}
		})
	}
}

// A --json command fails in JSON too, on stdout, with the same exit code.
func TestJSONErrors(t *testing.T) {
	empty, broken := privateDir(t), privateDir(t)
	fakeSupervisor(t, broken, nil)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"status", "--json", "--run-dir", empty}, 3, "no cluster is running (run dir " + empty + ")"},
		{[]string{"status", "--run-dir", empty, "--json"}, 3, "no cluster is running"},
		{[]string{"status", "--json", "--run-dir", broken}, 1, "fake supervisor refuses"},
		{[]string{"status", "--json", "extra"}, 2, "unexpected arguments"},
		{[]string{"status", "--json", "--bogus"}, 2, "-bogus"},
	} {
		stdout, stderr, code := runSplit(t, tc.args...)
		var got struct{ Error string }
		if err := json.Unmarshal([]byte(stdout), &got); err != nil || code != tc.code || !strings.Contains(got.Error, tc.want) {
			t.Errorf("posterctl %q: exit %d, stdout %q (%v), stderr %q; want exit %d and {\"error\": …%q…}",
				tc.args, code, stdout, err, stderr, tc.code, tc.want)
		}
	}
}

// The flags after a name work on every client command: each of these
// reaches the run dir it names.
func TestFlagsAfterNames(t *testing.T) {
	dir := privateDir(t)
	logs := filepath.Join(dir, supervisor.LogsDir)
	os.MkdirAll(logs, 0o700)
	var lines strings.Builder
	for i := 1; i <= 10; i++ {
		fmt.Fprintf(&lines, "line %d\n", i)
	}
	os.WriteFile(filepath.Join(logs, "backend-1.log"), []byte(lines.String()), 0o600)

	stdout, stderr, code := runSplit(t, "logs", "backend-1", "-n", "5", "--run-dir", dir)
	if code != 0 || strings.Contains(stdout, "line 5\n") || !strings.Contains(stdout, "line 6") || !strings.Contains(stdout, "line 10") {
		t.Errorf("logs backend-1 -n 5: exit %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, args := range [][]string{{"restart", "lb", "--run-dir", dir}, {"scale", "4", "--run-dir", dir}, {"status", "--run-dir", dir}} {
		_, stderr, code := runSplit(t, args...)
		if code != 3 || !strings.Contains(stderr, "(run dir "+dir+")") {
			t.Errorf("posterctl %q: exit %d, stderr %q; want exit 3 naming %s", args, code, stderr, dir)
		}
	}
}

// The range scale states is the cluster's: from 0 with remote backends,
// less one per remote backend at the top.
func TestScaleRangeOfCluster(t *testing.T) {
	remote, local := privateDir(t), privateDir(t)
	fakeSupervisor(t, remote, &supervisor.Status{Children: []supervisor.ChildStatus{
		{Name: "backend-1", State: supervisor.Running}, {Name: "10.0.0.2:3001", Remote: true}, {Name: "10.0.0.3:3001", Remote: true}}})
	fakeSupervisor(t, local, &supervisor.Status{Children: []supervisor.ChildStatus{{Name: "backend-1", State: supervisor.Running}}})
	for _, tc := range []struct {
		dir, n string
		code   int
		want   string
	}{
		{remote, "-1", 2, "invalid N -1: this cluster allows 0 to 62 local backends (it has 2 remote, and the load balancer takes at most 64)"},
		{remote, "63", 2, "0 to 62"},
		{remote, "0", 1, "fake supervisor refuses"}, // in range: asked for
		{local, "0", 2, "invalid N 0: this cluster allows 1 to 64 local backends"},
		{local, "65", 2, "1 to 64"},
	} {
		_, stderr, code := runSplit(t, "scale", "--run-dir", tc.dir, "--", tc.n)
		if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("scale %s: exit %d, stderr %q; want exit %d, one line with %q", tc.n, code, stderr, tc.code, tc.want)
		}
	}
}

func TestExitReport(t *testing.T) {
	for _, tc := range []struct {
		err            error
		asJSON         bool
		code           int
		stdout, stderr string
	}{
		{nil, false, 0, "", ""},
		{nil, true, 0, "", ""},
		{errors.New("boom"), false, 1, "", "posterctl: boom\n"},
		{cli.Exit("no cluster", 3), false, 3, "", "posterctl: no cluster\n"},
		{cli.Exit(`say "hi"`, 2), true, 2, `{"error":"say \"hi\""}` + "\n", ""},
		{cli.Exit("", 130), true, 130, "", ""},
	} {
		var out, errw bytes.Buffer
		code := exitReport(tc.err, tc.asJSON, &out, &errw)
		if code != tc.code || out.String() != tc.stdout || errw.String() != tc.stderr {
			t.Errorf("exitReport(%v, %v) = %d, %q, %q; want %d, %q, %q", tc.err, tc.asJSON, code, out.String(), errw.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}

// privateDir is a temporary directory that passes the run dir check (mode
// 0700); t.TempDir's directories follow the umask.
func privateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}
