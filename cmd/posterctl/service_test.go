package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

const unitPath = "../../configs/posterctl.service"

// The shipped unit holds what the README and the issue promise of it, and
// systemd-analyze verify finds nothing to say about it. The unit names
// /usr/local/bin/posterctl, which verify checks exists: the test verifies a
// copy that names the binary under test instead.
func TestServiceUnit(t *testing.T) {
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, line := range strings.Split(string(unit), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			settings[k] += v + "\n"
		}
	}
	for key, want := range map[string]string{
		"Type":             "notify",
		"ExecStart":        "/usr/local/bin/posterctl up --config /etc/posterctl.yaml",
		"ExecReload":       "/usr/local/bin/posterctl restart",
		"KillMode":         "mixed",
		"RuntimeDirectory": "posterctl",
		"Environment":      "POSTERCTL_RUN_DIR=" + serviceRunDir,
		"NotifyAccess":     "main",
	} {
		if want != "" && !strings.Contains(settings[key], want) {
			t.Errorf("%s=%q, want it to hold %q", key, settings[key], want)
		}
	}
	if !strings.Contains(settings["ExecStart"], "--data-dir /") {
		t.Errorf("ExecStart=%q: the data dir must be absolute (a unit's working directory is /)", settings["ExecStart"])
	}
	stop, err := time.ParseDuration(strings.TrimSpace(settings["TimeoutStopSec"]))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	if grace := defaultGrace(t); stop < 2*grace {
		t.Errorf("TimeoutStopSec=%v: want at least twice --grace (%v): the LB drains, then the backends", stop, grace)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("SKIPPED: systemd-analyze is not installed (apt-get install systemd): the unit was not verified")
	}
	exe, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "posterctl.service")
	if err := os.WriteFile(copyPath, bytes.ReplaceAll(unit, []byte("/usr/local/bin/posterctl"), []byte(exe)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify", copyPath).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// defaultGrace is up's default --grace.
func defaultGrace(t *testing.T) time.Duration {
	t.Helper()
	for _, f := range upFlags(&upConfig{}) {
		if d, ok := f.(interface{ GetValue() string }); ok && f.Names()[0] == "grace" {
			g, err := time.ParseDuration(d.GetValue())
			if err != nil {
				t.Fatal(err)
			}
			return g
		}
	}
	t.Fatal("up has no --grace")
	return 0
}

// Root, finding no cluster in the default run dir, looks in the
// service's; a run dir given by flag or environment is never second-guessed.
func TestClientRunDir(t *testing.T) {
	def, service := t.TempDir(), t.TempDir()
	live := func(dir string) { os.WriteFile(filepath.Join(dir, "posterctl.pid"), []byte("1\n"), 0o600) }
	if got := pickRunDir(def, false, 0, service); got != def {
		t.Errorf("no cluster anywhere: %s, want the default", got)
	}
	live(service)
	for _, tc := range []struct {
		given bool
		euid  int
		want  string
	}{
		{false, 0, service},
		{true, 0, def},
		{false, 1000, def},
	} {
		if got := pickRunDir(def, tc.given, tc.euid, service); got != tc.want {
			t.Errorf("given %v euid %d: %s, want %s", tc.given, tc.euid, got, tc.want)
		}
	}
	live(def)
	if got := pickRunDir(def, false, 0, service); got != def {
		t.Errorf("clusters in both: %s, want the default", got)
	}

	// "Given" is what urfave/cli says: the flag, or POSTERCTL_RUN_DIR.
	given := func(env string, args ...string) bool {
		t.Helper()
		if env != "" {
			t.Setenv("POSTERCTL_RUN_DIR", env)
		} else {
			t.Setenv("POSTERCTL_RUN_DIR", "")
			os.Unsetenv("POSTERCTL_RUN_DIR")
		}
		var runDir string
		var set bool
		app := &cli.App{Writer: io.Discard, ErrWriter: io.Discard, ExitErrHandler: func(*cli.Context, error) {}, Commands: []*cli.Command{{
			Name: "status", Flags: []cli.Flag{runDirFlag(&runDir)},
			Action: func(c *cli.Context) error { set = c.IsSet("run-dir"); return nil },
		}}}
		if err := app.Run(append([]string{"posterctl", "status"}, args...)); err != nil {
			t.Fatal(err)
		}
		return set
	}
	if given("") || !given("", "--run-dir", def) || !given(def) {
		t.Error("IsSet(run-dir) does not tell a given run dir from the default")
	}
}
