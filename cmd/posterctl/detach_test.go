package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/posterctl/posterctl/supervisor"
	"github.com/shirou/gopsutil/v3/process"
	"github.com/urfave/cli/v2"
)

func TestSupervisorArgs(t *testing.T) {
	for name, tc := range map[string]struct{ in, want []string }{
		"Short":        {[]string{"up", "-d", "--backends", "3"}, []string{"up", "--supervise", "--backends", "3"}},
		"Long":         {[]string{"up", "--backends", "3", "--detach"}, []string{"up", "--supervise", "--backends", "3"}},
		"LongValue":    {[]string{"up", "--detach=true", "--grace=3s"}, []string{"up", "--supervise", "--grace=3s"}},
		"ShortValue":   {[]string{"up", "-d=1", "-detach", "--d"}, []string{"up", "--supervise"}},
		"Global":       {[]string{"--log-level", "debug", "--log-format=json", "up", "-d"}, []string{"--log-level", "debug", "--log-format=json", "up", "--supervise"}},
		"GlobalIsUp":   {[]string{"--log-level", "up", "up", "-d"}, []string{"--log-level", "up", "up", "--supervise"}},
		"ValueLikeD":   {[]string{"up", "--data-dir", "-d", "-d"}, []string{"up", "--supervise", "--data-dir", "-d"}},
		"BoolFlag":     {[]string{"up", "--no-lb", "-d", "--backends", "1"}, []string{"up", "--supervise", "--no-lb", "--backends", "1"}},
		"Repeated":     {[]string{"up", "-d", "--remote-backend", "a:1", "--remote-backend=b:2"}, []string{"up", "--supervise", "--remote-backend", "a:1", "--remote-backend=b:2"}},
		"DBOutOfArgv":  {[]string{"up", "--db", "postgres://u:pw@h/db", "-d", "--db=x.db", "-db", "y.db", "--port", "1"}, []string{"up", "--supervise", "--port", "1"}},
		"Terminator":   {[]string{"up", "-d", "--", "-d"}, []string{"up", "--supervise", "--", "-d"}},
		"Positional":   {[]string{"up", "-d", "extra", "-d"}, []string{"up", "--supervise", "extra", "-d"}},
		"MissingValue": {[]string{"up", "-d", "--port"}, []string{"up", "--supervise", "--port"}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := supervisorArgs(tc.in)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("supervisorArgs(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	for _, in := range [][]string{nil, {"status", "-d"}, {"--log-level"}, {"--log-level", "debug"}} {
		if got, err := supervisorArgs(in); err == nil {
			t.Errorf("supervisorArgs(%q) = %q, want an error", in, got)
		}
	}
}

// upFlagValues holds a valid non-default value for every up flag; a flag
// missing here fails TestDetachKeepsEveryUpFlag, so a new one is tested too.
var upFlagValues = map[string][]string{
	"backends": {"3"}, "port": {"5000"}, "health-port": {"5001"}, "base-port": {"5100"},
	"data-dir": {"/tmp/poster-data"}, "db": {"/tmp/poster-other.db"}, "host": {"0.0.0.0"}, "listen": {"127.0.0.1"},
	"remote-backend": {"10.0.0.2:3001", "http://10.0.0.3:3001"}, "run-dir": {"/tmp/poster-run"},
	"grace": {"3s"}, "ready-timeout": {"17s"}, "restart-backoff-min": {"50ms"}, "restart-backoff-max": {"2s"},
	"restart-reset": {"11s"}, "restart-limit": {"7"}, "restart-window": {"70s"},
	"trusted-proxy": {"10.0.0.0/8", "192.0.2.1"},
	"max-conns":     {"500"}, "per-client-max-conns": {"0"},
	"log-max-size": {"3MiB"}, "log-max-files": {"2"},
}

// Every up flag given with -d reaches the detached supervisor with its
// value: parsing the forwarded command line (and the store it gets through
// the environment) gives the configuration the user's own gave. Bool flags
// (--no-lb) go in a second run, without --remote-backend, which they refuse.
func TestDetachKeepsEveryUpFlag(t *testing.T) {
	t.Setenv("POSTERCTL_DB", "")
	os.Unsetenv("POSTERCTL_DB")
	for _, bools := range []bool{false, true} {
		args := []string{"up", "-d"}
		for _, f := range upFlags(&upConfig{}) {
			name := f.Names()[0]
			isBool := !takesValue([]cli.Flag{f})[name]
			switch {
			case name == "config" || name == detachFlag || name == superviseFlag:
				continue
			case isBool:
				if bools {
					args = append(args, "--"+name)
				}
				continue
			case bools && name == "remote-backend":
				continue
			}
			vals, ok := upFlagValues[name]
			if !ok {
				t.Fatalf("no test value for the up flag --%s", name)
			}
			for i, v := range vals {
				if i%2 == 0 {
					args = append(args, "--"+name, v)
				} else {
					args = append(args, "-"+name+"="+v)
				}
			}
		}
		t.Run(map[bool]string{false: "ValueFlags", true: "BoolFlags"}[bools], func(t *testing.T) {
			user, err := parseUp(t, args[1:]...)
			if err != nil {
				t.Fatal(err)
			}
			fwd, err := supervisorArgs(args)
			if err != nil {
				t.Fatal(err)
			}
			t.Setenv("POSTERCTL_DB", user.DB) // as detach passes it
			got, err := parseUp(t, fwd[1:]...)
			if err != nil {
				t.Fatalf("forwarded %q: %v", fwd, err)
			}
			if !got.supervise || got.Detach || !user.Detach {
				t.Fatalf("forwarded %q: supervise %v detach %v", fwd, got.supervise, got.Detach)
			}
			got.supervise, got.Detach, user.Detach = false, false, false
			if !sameConfig(*got, *user) {
				t.Fatalf("the detached supervisor gets %+v\nthe user asked for %+v", *got, *user)
			}
		})
	}
}

// A flag given with -d, in any of its forms, reaches the real detached
// supervisor: it shows in its command line, and the cluster runs by it.
func TestDetachForwardsFlags(t *testing.T) {
	for _, form := range []string{"-d", "--detach=true"} {
		t.Run(form, func(t *testing.T) { testDetachForwardsFlags(t, form) })
	}
}

func testDetachForwardsFlags(t *testing.T, form string) {
	dir := t.TempDir()
	runDir, dataDir := filepath.Join(dir, "run"), filepath.Join(dir, "data")
	db := filepath.Join(dir, "other", "poster.db")
	basePort := clitest.FreePort(t)
	args := []string{"--log-level", "debug", "up", form, "--no-lb", "--backends", "1",
		"--base-port", strconv.Itoa(basePort), "--run-dir", runDir, "--data-dir", dataDir, "--db=" + db,
		"--restart-limit", "7", "-ready-timeout=17s", "--grace", "3s"}
	t.Cleanup(func() {
		if out, code := clitest.Run(t, 60*time.Second, bin, "down", "--run-dir", runDir); code != 0 {
			t.Errorf("down: exit %d\n%s", code, out)
		}
	})
	out, code := clitest.Run(t, 60*time.Second, bin, args...)
	if code != 0 {
		t.Fatalf("%q: exit %d\n%s", args, code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := supervisor.NewClient(runDir)
	defer cl.CloseIdleConnections()
	st, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Children) != 1 || st.Children[0].Port != basePort || st.Supervisor.Store != db {
		t.Fatalf("--no-lb --backends 1 --base-port %d --db %s not applied: store %q children %+v", basePort, db, st.Supervisor.Store, st.Children)
	}
	p, err := process.NewProcess(int32(st.Supervisor.Pid))
	if err != nil {
		t.Fatal(err)
	}
	argv, err := p.CmdlineSlice()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(argv[1:], " ")
	want := "--log-level debug up --supervise --no-lb --backends 1 --base-port " + strconv.Itoa(basePort) +
		" --run-dir " + runDir + " --data-dir " + dataDir + " --restart-limit 7 -ready-timeout=17s --grace 3s"
	if got != want {
		t.Fatalf("the detached supervisor runs with\n%s\nwant\n%s", got, want)
	}
}
