package main

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/cluster"
	"github.com/posterctl/posterctl/proxy"
	"github.com/posterctl/posterctl/supervisor"
	"github.com/urfave/cli/v2"
)

// childRun is what one child's command line resolves to under the real
// `lb` and `backend` commands.
type childRun struct {
	backend             *backendConfig
	lb                  *proxy.Config
	drain               time.Duration
	logFormat, logLevel string
}

// parseChild parses spec's command line, with its environment, as the
// child would: the real global flags and the real lb and backend commands.
func parseChild(t *testing.T, spec supervisor.Spec) childRun {
	t.Helper()
	// The child inherits the supervisor's environment; none of it may
	// leak into what this test parses.
	for _, k := range []string{"POSTERCTL_DB", "POSTERCTL_LOG_FORMAT", "POSTERCTL_LOG_LEVEL"} {
		t.Setenv(k, "")
	}
	for _, kv := range spec.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("%s: env entry %q is not KEY=VALUE", spec.Name, kv)
		}
		t.Setenv(k, v)
	}
	var got childRun
	logs := func(c *cli.Context) { got.logFormat, got.logLevel = c.String("log-format"), c.String("log-level") }
	app := &cli.App{
		Name:  "posterctl",
		Flags: globalFlags(),
		Commands: []*cli.Command{
			newLBCommand(func(c *cli.Context, cfg proxy.Config, drain time.Duration) error {
				got.lb, got.drain = &cfg, drain
				logs(c)
				return nil
			}),
			newBackendCommand(func(c *cli.Context, cfg *backendConfig) error {
				got.backend = cfg
				logs(c)
				return nil
			}),
		},
		ExitErrHandler: func(*cli.Context, error) {},
		Writer:         io.Discard,
		ErrWriter:      io.Discard,
	}
	if err := app.Run(append([]string{spec.Path}, spec.Args...)); err != nil {
		t.Fatalf("%s: %q does not parse: %v", spec.Name, spec.Args, err)
	}
	if got.lb == nil && got.backend == nil {
		t.Fatalf("%s: %q ran neither lb nor backend", spec.Name, spec.Args)
	}
	return got
}

func port(t *testing.T, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Every child command line the plan makes parses with the real commands
// into exactly the settings it was made from.
func TestPlanParsesWithRealCommands(t *testing.T) {
	// The children read the secret files the supervisor makes in the run
	// dir when they parse their flags.
	runDir := t.TempDir()
	secrets := map[string]string{cluster.ProxySecretName: "proxy-secret-0123456789abcdef", cluster.AdminTokenName: "admin-token-0123456789abcdef"}
	for name, v := range secrets {
		if err := os.WriteFile(filepath.Join(runDir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	base := func() cluster.Settings {
		return cluster.Settings{Backends: 2, Port: 3000, HealthPort: 4000, BasePort: 3001, DataDir: "/data", Host: "127.0.0.1",
			RunDir: runDir, Grace: 10 * time.Second, ReadyTimeout: 30 * time.Second, Restart: supervisor.DefaultRestartPolicy(),
			MaxConns: 10000, PerClientMaxConns: 256}
	}
	dsn := "postgres://poster:s3cr3t@db.internal:5432/poster"
	cases := map[string]struct {
		edit          func(*cluster.Settings)
		format, level string
		wantDB        string
		wantRemote    []string
		wantDrain     time.Duration
		noLB          bool
	}{
		"OneBackend":   {edit: func(s *cluster.Settings) { s.Backends = 1 }, format: "json", level: "info", wantDB: "/data/poster.db", wantDrain: 10 * time.Second},
		"FourBackends": {edit: func(s *cluster.Settings) { s.Backends = 4 }, format: "console", level: "debug", wantDB: "/data/poster.db", wantDrain: 10 * time.Second},
		"Remote": {edit: func(s *cluster.Settings) {
			s.Backends = 1
			s.Remote = []string{"http://10.0.0.2:3001", "10.0.0.3:3005"}
		}, format: "json", level: "warn", wantDB: "/data/poster.db", wantRemote: []string{"10.0.0.2:3001", "10.0.0.3:3005"}, wantDrain: 10 * time.Second},
		"RemoteOnly": {edit: func(s *cluster.Settings) {
			s.Backends = 0
			s.Remote = []string{"10.0.0.2:3001"}
		}, format: "json", level: "info", wantDB: "/data/poster.db", wantRemote: []string{"10.0.0.2:3001"}, wantDrain: 10 * time.Second},
		"Postgres": {edit: func(s *cluster.Settings) { s.DB = dsn }, format: "json", level: "error", wantDB: dsn, wantDrain: 10 * time.Second},
		"CustomPortsEveryInterface": {edit: func(s *cluster.Settings) {
			s.Backends, s.Port, s.HealthPort, s.BasePort, s.Host = 3, 18080, 18081, 19000, "0.0.0.0"
			s.Grace = 0 // the LB still gets a positive drain timeout
		}, format: "console", level: "info", wantDB: "/data/poster.db", wantDrain: time.Millisecond},
		"ConnCaps":          {edit: func(s *cluster.Settings) { s.MaxConns, s.PerClientMaxConns = 50, 0 }, format: "json", level: "info", wantDB: "/data/poster.db", wantDrain: 10 * time.Second},
		"LBDefaultMaxConns": {edit: func(s *cluster.Settings) { s.MaxConns, s.PerClientMaxConns = 0, 7 }, format: "json", level: "info", wantDB: "/data/poster.db", wantDrain: 10 * time.Second},
		"NoLB":              {edit: func(s *cluster.Settings) { s.NoLB, s.Backends, s.Host = true, 4, "0.0.0.0" }, format: "json", level: "info", wantDB: "/data/poster.db", noLB: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := base()
			s.TrustedProxies = []string{"10.0.0.0/8"}
			tc.edit(&s)
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			plan := cluster.Plan(s, cluster.Run{Exe: "/bin/posterctl", LogFormat: tc.format, LogLevel: tc.level, Store: redactDB(s.DBPath())})
			var backendAddrs []string
			var lbs int
			for _, spec := range plan.Specs {
				got := parseChild(t, spec)
				if got.logFormat != tc.format || got.logLevel != tc.level {
					t.Errorf("%s: logs %s/%s, want %s/%s", spec.Name, got.logFormat, got.logLevel, tc.format, tc.level)
				}
				if b := got.backend; b != nil {
					checkBackend(t, s, spec, b, tc.wantDB)
					if b.proxySecret != secrets[cluster.ProxySecretName] {
						t.Errorf("%s: proxy secret %q", spec.Name, b.proxySecret)
					}
					backendAddrs = append(backendAddrs, spec.Name+"="+spec.Addr)
					continue
				}
				lbs++
				if got.lb.ProxySecret != secrets[cluster.ProxySecretName] || got.lb.AdminToken != secrets[cluster.AdminTokenName] ||
					!slices.Equal(got.lb.TrustedProxies, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}) {
					t.Errorf("lb: proxy secret %q, admin token %q, trusted %v", got.lb.ProxySecret, got.lb.AdminToken, got.lb.TrustedProxies)
				}
				checkLB(t, s, spec, got, append(slices.Clone(backendAddrs), tc.wantRemote...), tc.wantDrain)
				if spec.Stage <= 0 {
					t.Errorf("lb stage %d: it must start after the backends", spec.Stage)
				}
				// The LB a scale or `restart lb` starts gets another set.
				more := append(slices.Clone(backendAddrs), "127.0.0.1:1")
				respawn := spec
				respawn.Args = plan.LBArgs(more)
				checkLB(t, s, respawn, parseChild(t, respawn), more, tc.wantDrain)
			}
			if len(backendAddrs) != s.Backends {
				t.Errorf("%d backends in the plan, want %d", len(backendAddrs), s.Backends)
			}
			if want := map[bool]int{false: 1, true: 0}[tc.noLB]; lbs != want {
				t.Errorf("%d LBs in the plan, want %d", lbs, want)
			}
			if !slices.Equal(plan.Remote, tc.wantRemote) {
				t.Errorf("remote %v, want %v", plan.Remote, tc.wantRemote)
			}
			// The backend scale adds.
			next := s.BasePort + s.Backends
			spec := plan.NewBackend(fmt.Sprintf("backend-%d", s.Backends+1), next)
			checkBackend(t, s, spec, parseChild(t, spec).backend, tc.wantDB)
		})
	}
}

func checkBackend(t *testing.T, s cluster.Settings, spec supervisor.Spec, b *backendConfig, wantDB string) {
	t.Helper()
	if b == nil {
		t.Fatalf("%s: %q is not a backend", spec.Name, spec.Args)
	}
	if b.Port != spec.Port || b.Host != s.Host || b.Name != spec.Name || b.DB != wantDB {
		t.Errorf("%s parses to port %d host %q name %q db %q; the plan says port %d host %q db %q",
			spec.Name, b.Port, b.Host, b.Name, b.DB, spec.Port, s.Host, wantDB)
	}
	if port(t, spec.Addr) != b.Port || spec.ReadyURL != "http://"+spec.Addr+"/healthz" {
		t.Errorf("%s: addr %q ready %q do not reach port %d", spec.Name, spec.Addr, spec.ReadyURL, b.Port)
	}
	if strings.Contains(strings.Join(spec.Args, " "), "s3cr3t") {
		t.Errorf("%s: the password is in argv %q", spec.Name, spec.Args)
	}
	// The supervisor binds each backend's socket and keeps it across
	// restarts: the fd the backend is told must be the socket of its own
	// host and port.
	if i := b.ListenFD - 3; b.ListenFD != cluster.BackendListenFD || i < 0 || i >= len(spec.Listen) ||
		spec.Listen[i] != net.JoinHostPort(s.Host, strconv.Itoa(b.Port)) {
		t.Errorf("%s: --listen-fd %d with inherited sockets %v, want fd %d bound to %s:%d", spec.Name, b.ListenFD, spec.Listen, cluster.BackendListenFD, s.Host, b.Port)
	}
}

func checkLB(t *testing.T, s cluster.Settings, spec supervisor.Spec, got childRun, wantBackends []string, wantDrain time.Duration) {
	t.Helper()
	lb := got.lb
	if lb == nil {
		t.Fatalf("%s: %q is not the lb", spec.Name, spec.Args)
	}
	if port(t, lb.Listen) != s.Port || port(t, lb.HealthListen) != s.HealthPort {
		t.Errorf("lb listens on %s and %s, want ports %d and %d", lb.Listen, lb.HealthListen, s.Port, s.HealthPort)
	}
	if !slices.Equal(lb.Backends, wantBackends) {
		t.Errorf("lb backends %v, want %v", lb.Backends, wantBackends)
	}
	if got.drain != wantDrain {
		t.Errorf("lb drain timeout %v, want %v", got.drain, wantDrain)
	}
	wantMax, wantPer := s.MaxConns, s.PerClientMaxConns
	if wantMax == 0 {
		wantMax = 10000
	}
	if wantPer == 0 {
		wantPer = -1 // no cap
	}
	if lb.MaxConns != wantMax || lb.MaxConnsPerClient != wantPer {
		t.Errorf("lb caps %d and %d per client, want %d and %d", lb.MaxConns, lb.MaxConnsPerClient, wantMax, wantPer)
	}
	// Spec.Listen becomes fds 3, 4, … in order: each fd the LB is told
	// must be the socket for the port it serves there.
	fds := map[int]int{lb.ListenFD: s.Port, lb.HealthListenFD: s.HealthPort}
	for fd, want := range fds {
		i := fd - 3
		if i < 0 || i >= len(spec.Listen) || port(t, spec.Listen[i]) != want {
			t.Errorf("lb fd %d should be the socket of port %d; inherited sockets %v", fd, want, spec.Listen)
		}
	}
	if h, _, _ := net.SplitHostPort(spec.Listen[lb.HealthListenFD-3]); h != "127.0.0.1" {
		t.Errorf("the health socket is bound on %q, want loopback", h)
	}
	if spec.ReadyURL != fmt.Sprintf("http://127.0.0.1:%d/health", s.HealthPort) || !spec.Handover {
		t.Errorf("lb ready %q handover %v", spec.ReadyURL, spec.Handover)
	}
}
