package cluster_test

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/cluster"
	"github.com/posterctl/posterctl/supervisor"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func settings() cluster.Settings {
	return cluster.Settings{Backends: 2, Port: 3000, HealthPort: 4000, BasePort: 3001, DataDir: "/data", Host: "127.0.0.1",
		RunDir: "/run", Grace: 10 * time.Second, ReadyTimeout: 30 * time.Second, Restart: supervisor.DefaultRestartPolicy()}
}

func TestBackendAddr(t *testing.T) {
	for host, want := range map[string]string{
		"127.0.0.1": "127.0.0.1:3001",
		"10.0.0.5":  "10.0.0.5:3001",
		"0.0.0.0":   "127.0.0.1:3001", // listening everywhere: reached on loopback
		"::":        "127.0.0.1:3001",
		"::1":       "[::1]:3001",
		"localhost": "localhost:3001",
	} {
		s := settings()
		s.Host = host
		if got := s.BackendAddr(3001); got != want {
			t.Errorf("host %q: BackendAddr = %q, want %q", host, got, want)
		}
	}
}

func TestDBPath(t *testing.T) {
	s := settings()
	if got := s.DBPath(); got != "/data/poster.db" {
		t.Errorf("default store %q", got)
	}
	s.DB = "postgres://u:p@h/db"
	if got := s.DBPath(); got != s.DB {
		t.Errorf("given store %q, want %q", got, s.DB)
	}
}

func TestRemoteAddrs(t *testing.T) {
	s := settings()
	s.Remote = []string{"http://10.0.0.2:3001", "10.0.0.3:3001"}
	got, err := s.RemoteAddrs()
	if err != nil || !slices.Equal(got, []string{"10.0.0.2:3001", "10.0.0.3:3001"}) {
		t.Fatalf("RemoteAddrs = %v, %v", got, err)
	}
	for _, bad := range [][]string{{"10.0.0.2"}, {"10.0.0.2:3001", "http://10.0.0.2:3001"}, {"127.0.0.1:3002"}} {
		s.Remote = bad
		if _, err := s.RemoteAddrs(); err == nil {
			t.Errorf("RemoteAddrs accepted %q", bad)
		}
		if err := s.Validate(); err == nil {
			t.Errorf("Validate accepted remote %q", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := settings().Validate(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*cluster.Settings)
		want string
	}{
		"TooMany":      {func(s *cluster.Settings) { s.Backends = 65 }, "--backends"},
		"LocalRemote":  {func(s *cluster.Settings) { s.Backends, s.Remote = 64, []string{"10.0.0.2:1"} }, "at most 64"},
		"NoLBNoneLeft": {func(s *cluster.Settings) { s.NoLB, s.Backends = true, 0 }, "nothing to run"},
		"Collide":      {func(s *cluster.Settings) { s.HealthPort = 3002 }, "collides"},
		"EmptyRunDir":  {func(s *cluster.Settings) { s.RunDir = "" }, "--run-dir"},
		"Restart":      {func(s *cluster.Settings) { s.Restart.Limit = -1 }, "restart"},
	} {
		t.Run(name, func(t *testing.T) {
			s := settings()
			tc.edit(&s)
			if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	// Without the LB its ports mean nothing, even clashing ones.
	s := settings()
	s.NoLB, s.Port, s.HealthPort = true, 3001, 3001
	if err := s.Validate(); err != nil {
		t.Fatalf("--no-lb with the LB's ports on the backends': %v", err)
	}
}

func TestPlan(t *testing.T) {
	s := settings()
	s.Remote = []string{"http://10.0.0.2:3001"}
	c := cluster.Plan(s, cluster.Run{Exe: "/bin/posterctl", LogFormat: "json", LogLevel: "warn", Store: "shown"})
	var names []string
	for _, sp := range c.Specs {
		names = append(names, sp.Name)
		if sp.Path != "/bin/posterctl" || !slices.Contains(sp.Env, "POSTERCTL_LOG_LEVEL=warn") || !slices.Contains(sp.Env, "POSTERCTL_DB=/data/poster.db") {
			t.Errorf("%s: path %q env %v", sp.Name, sp.Path, sp.Env)
		}
	}
	if !slices.Equal(names, []string{"backend-1", "backend-2", "lb"}) {
		t.Fatalf("children %v", names)
	}
	lb := c.Specs[2]
	if lb.Stage <= c.Specs[0].Stage || !lb.Handover || !slices.Equal(lb.Extra, []int{4000}) {
		t.Errorf("lb stage %d handover %v extra %v", lb.Stage, lb.Handover, lb.Extra)
	}
	if len(lb.Listen) != cluster.LBHealthListenFD-2 || lb.Listen[cluster.LBListenFD-3] != ":3000" || lb.Listen[cluster.LBHealthListenFD-3] != "127.0.0.1:4000" {
		t.Errorf("lb sockets %v do not match fds %d and %d", lb.Listen, cluster.LBListenFD, cluster.LBHealthListenFD)
	}
	// Local backends reach the LB by name, as status calls them; remote
	// ones by address.
	if args := strings.Join(lb.Args, " "); !strings.Contains(args, "--backend backend-1=127.0.0.1:3001 --backend backend-2=127.0.0.1:3002 --backend 10.0.0.2:3001") {
		t.Errorf("lb args %q", args)
	}
	if c.Store != "shown" || c.URL != "http://127.0.0.1:3000/" || c.AdminURL != "http://127.0.0.1:4000" ||
		c.RunDir != "/run" || c.DataDir != "/data" || c.BasePort != 3001 || !slices.Equal(c.Remote, []string{"10.0.0.2:3001"}) {
		t.Errorf("config %+v", c)
	}
	c.Sink = supervisor.NewPrefixSink(io.Discard, false, c.ChildNames()) // the caller's part
	if err := c.Validate(); err != nil {
		t.Errorf("the supervisor refuses the plan: %v", err)
	}
	line := cluster.ReadyLine(s, c, 1234*time.Millisecond, 42)
	for _, want := range []string{"in 1.234s", "2 backends + 1 remote", "store shown", "supervisor pid 42", "run dir /run"} {
		if !strings.Contains(line, want) {
			t.Errorf("ready line %q lacks %q", line, want)
		}
	}
}
