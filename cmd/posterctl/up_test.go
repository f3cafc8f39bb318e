package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/cluster"
	"github.com/posterctl/posterctl/supervisor"
	"github.com/urfave/cli/v2"
)

// parseUp runs the real up command line with a stub in place of the
// supervisor and returns the resolved configuration.
func parseUp(t *testing.T, args ...string) (*upConfig, error) {
	t.Helper()
	var got *upConfig
	app := &cli.App{
		Name:           "posterctl",
		Commands:       []*cli.Command{newUpCommand(func(_ *cli.Context, cfg *upConfig) error { got = cfg; return nil })},
		ExitErrHandler: func(*cli.Context, error) {},
		Writer:         io.Discard,
		ErrWriter:      io.Discard,
	}
	err := app.Run(append([]string{"posterctl", "up"}, args...))
	if err == nil && got == nil {
		t.Fatal("the command did not run")
	}
	return got, err
}

func TestUpConfig(t *testing.T) {
	t.Setenv("POSTERCTL_RUN_DIR", "") // restored after the test
	os.Unsetenv("POSTERCTL_RUN_DIR")
	t.Run("Defaults", func(t *testing.T) {
		cfg, err := parseUp(t)
		if err != nil {
			t.Fatal(err)
		}
		want := upConfig{Settings: cluster.Settings{Backends: 2, Port: 3000, HealthPort: 4000, BasePort: 3001, DataDir: "./data",
			Host: "127.0.0.1", RunDir: supervisor.DefaultRunDir(), Grace: 10 * time.Second, ReadyTimeout: 30 * time.Second,
			Restart: supervisor.DefaultRestartPolicy(), MaxConns: 10000, PerClientMaxConns: 256}, LogMaxSize: "50MiB", LogMaxFiles: 5}
		if !sameConfig(*cfg, want) {
			t.Fatalf("cfg = %+v\nwant  %+v", *cfg, want)
		}
	})
	t.Run("ShippedFileHoldsTheDefaults", func(t *testing.T) {
		path := filepath.Join("..", "..", "configs", "posterctl.yaml")
		def, _ := parseUp(t)
		cfg, err := parseUp(t, "--config", path)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Config = ""
		if !sameConfig(*cfg, *def) {
			t.Fatalf("configs/posterctl.yaml gives %+v\ndefaults are %+v", *cfg, *def)
		}
		text, _ := os.ReadFile(path)
		for _, f := range upFlags(&upConfig{}) {
			if n := f.Names()[0]; n != "config" && n != "supervise" && !strings.Contains(string(text), n+":") {
				t.Errorf("configs/posterctl.yaml does not mention %q", n)
			}
		}
	})
	t.Run("FlagsOverrideFile", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(file, []byte("backends: 3\nport: 5000\ngrace: 2s\nrestart-limit: 4\n"), 0o600)
		cfg, err := parseUp(t, "--config", file, "--backends", "5")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Backends != 5 || cfg.Port != 5000 || cfg.Grace != 2*time.Second || cfg.Restart.Limit != 4 {
			t.Fatalf("cfg = %+v", cfg)
		}
	})
	t.Run("RemoteOnly", func(t *testing.T) {
		cfg, err := parseUp(t, "--backends", "0", "--remote-backend", "http://10.0.0.2:3001", "--remote-backend", "10.0.0.3:3001")
		if err != nil {
			t.Fatal(err)
		}
		scfg := plan(cfg)
		if len(scfg.Specs) != 1 || scfg.Specs[0].Name != "lb" {
			t.Fatalf("specs %+v, want the LB alone", scfg.Specs)
		}
		args := strings.Join(scfg.Specs[0].Args, " ")
		if !strings.Contains(args, "--backend 10.0.0.2:3001 --backend 10.0.0.3:3001") {
			t.Fatalf("lb args %q lack the remote backends", args)
		}
		if !slices.Equal(scfg.Remote, []string{"10.0.0.2:3001", "10.0.0.3:3001"}) {
			t.Fatalf("remote %v", scfg.Remote)
		}
	})
	t.Run("NoLBAndPostgres", func(t *testing.T) {
		dsn := "postgres://poster:s3cr3t@db.internal:5432/poster"
		cfg, err := parseUp(t, "--no-lb", "--host", "0.0.0.0", "--backends", "3", "--db", dsn,
			"--port", "3001") // the LB's ports do not count without it
		if err != nil {
			t.Fatal(err)
		}
		scfg := plan(cfg)
		if len(scfg.Specs) != 3 || scfg.HealthURL != "" || scfg.URL != "" {
			t.Fatalf("specs %+v health %q, want 3 backends and no LB", scfg.Specs, scfg.HealthURL)
		}
		b := scfg.Specs[2]
		if got := strings.Join(b.Args, " "); got != "backend --port 3003 --host 0.0.0.0 --name backend-3 --listen-fd 3 --proxy-secret-file "+filepath.Join(cfg.RunDir, cluster.ProxySecretName) || strings.Contains(got, "s3cr3t") {
			t.Fatalf("backend args %q", got)
		}
		if !slices.Contains(b.Env, "POSTERCTL_DB="+dsn) {
			t.Fatalf("backend env %v lacks the store", b.Env)
		}
		if b.Addr != "127.0.0.1:3003" || b.ReadyURL != "http://127.0.0.1:3003/healthz" {
			t.Fatalf("addr %q ready %q: a backend on 0.0.0.0 is checked on loopback", b.Addr, b.ReadyURL)
		}
		if scfg.Store != "postgres://poster:xxxxx@db.internal:5432/poster" {
			t.Fatalf("store shown as %q", scfg.Store)
		}
		if line := cluster.ReadyLine(cfg.Settings, scfg, time.Second, 1); strings.Contains(line, "s3cr3t") || !strings.Contains(line, "no load balancer") {
			t.Fatalf("ready line %q", line)
		}
	})
	t.Run("DBErrorHidesPassword", func(t *testing.T) {
		_, err := parseUp(t, "--db", "postgres://u:s3cr3t@host:notaport/db")
		if err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("EnvRunDir", func(t *testing.T) {
		t.Setenv("POSTERCTL_RUN_DIR", "/somewhere")
		cfg, err := parseUp(t)
		if err != nil || cfg.RunDir != "/somewhere" {
			t.Fatalf("cfg %+v err %v", cfg, err)
		}
	})
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"Backends":      {[]string{"--backends", "0"}, "--backends"},
		"Backends65":    {[]string{"--backends", "65"}, "--backends"},
		"RemoteNoLB":    {[]string{"--no-lb", "--remote-backend", "10.0.0.2:3001"}, "--no-lb"},
		"ZeroNoLB":      {[]string{"--no-lb", "--backends", "0"}, "nothing to run"},
		"RemoteBad":     {[]string{"--remote-backend", "10.0.0.2"}, "host:port"},
		"RemotePort":    {[]string{"--remote-backend", "10.0.0.2:0"}, "1 to 65535"},
		"RemoteScheme":  {[]string{"--remote-backend", "https://10.0.0.2:3001"}, "scheme"},
		"RemoteTwice":   {[]string{"--remote-backend", "10.0.0.2:3001", "--remote-backend", "http://10.0.0.2:3001"}, "twice"},
		"RemoteIsLocal": {[]string{"--remote-backend", "127.0.0.1:3002"}, "local backends"},
		"Host":          {[]string{"--host", "example.com"}, "--host"},
		"DBScheme":      {[]string{"--db", "mysql://u:pw@h/db"}, "scheme"},
		"DBEmptyHost":   {[]string{"--db", "postgres://u:s3cr3t@:badport/db"}, "--db"},
		"PortRange":     {[]string{"--port", "70000"}, "--port"},
		"SamePorts":     {[]string{"--port", "4000"}, "must differ"},
		"Collide":       {[]string{"--health-port", "3002"}, "collides"},
		"BasePortEnd":   {[]string{"--base-port", "65535", "--backends", "2"}, "65536"},
		"Grace":         {[]string{"--grace", "-1s"}, "--grace"},
		"ReadyTimeout":  {[]string{"--ready-timeout", "0s"}, "--ready-timeout"},
		"Backoff":       {[]string{"--restart-backoff-max", "1ms"}, "restart"},
		"Args":          {[]string{"extra"}, "unexpected arguments"},
		"EmptyDataDir":  {[]string{"--data-dir", ""}, "--data-dir"},
		"UnknownKey":    {[]string{"--config", writeConfig(t, "prot: 1\n")}, `unknown setting "prot"`},
		"WrongType":     {[]string{"--config", writeConfig(t, "port: [1]\n")}, "port"},
		"NotYAML":       {[]string{"--config", writeConfig(t, "port: : :\n")}, "config"},
		"MissingConfig": {[]string{"--config", "/nonexistent/c.yaml"}, "no such file"},
	} {
		t.Run("Bad"+name, func(t *testing.T) {
			_, err := parseUp(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
			if coder, ok := err.(cli.ExitCoder); !ok || coder.ExitCode() != 2 {
				t.Fatalf("err %v is not a usage error (exit 2)", err)
			}
		})
	}
}

// plan is the plan `up` hands the supervisor for cfg.
func plan(cfg *upConfig) supervisor.Config {
	return cluster.Plan(cfg.Settings, cluster.Run{Exe: "/bin/posterctl", LogFormat: "json", LogLevel: "info", Store: redactDB(cfg.DBPath())})
}

// sameConfig compares two configs; the remote backends and trusted proxies
// by value, since a cli.StringSlice also records whether it was set.
func sameConfig(a, b upConfig) bool {
	if !slices.Equal(a.remote.Value(), b.remote.Value()) || !slices.Equal(a.Remote, b.Remote) ||
		!slices.Equal(a.trusted.Value(), b.trusted.Value()) || !slices.Equal(a.TrustedProxies, b.TrustedProxies) {
		return false
	}
	a.remote, b.remote = cli.StringSlice{}, cli.StringSlice{}
	a.Remote, b.Remote = nil, nil
	a.trusted, b.trusted = cli.StringSlice{}, cli.StringSlice{}
	a.TrustedProxies, b.TrustedProxies = nil, nil
	return reflect.DeepEqual(a, b)
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckDataDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if err := checkDataDir(filepath.Join(dir, "a", "b")); err != nil {
		t.Fatalf("creatable dir refused: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Fatal("checkDataDir created something")
	}
	if err := checkDataDir(filepath.Join(file, "data")); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("data dir under a file: %v", err)
	}
}
