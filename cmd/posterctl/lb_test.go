package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/posterctl/posterctl/proxy"
)

// parseLB runs the real lb command line with a stub in place of the balancer.
func parseLB(t *testing.T, args ...string) (proxy.Config, time.Duration, error) {
	t.Helper()
	var got proxy.Config
	var drain time.Duration
	ran := false
	app := &cli.App{
		Name: "posterctl",
		Commands: []*cli.Command{newLBCommand(func(_ *cli.Context, cfg proxy.Config, d time.Duration) error {
			got, drain, ran = cfg, d, true
			return nil
		})},
		ExitErrHandler: func(*cli.Context, error) {},
		Writer:         io.Discard,
		ErrWriter:      io.Discard,
	}
	err := app.Run(append([]string{"posterctl", "lb"}, args...))
	if err == nil && !ran {
		t.Fatal("the command did not run")
	}
	return got, drain, err
}

func TestLBConfig(t *testing.T) {
	t.Run("Defaults", func(t *testing.T) {
		cfg, drain, err := parseLB(t, "--backend", "127.0.0.1:3001", "--backend", "http://127.0.0.1:3002")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Listen != ":3000" || cfg.HealthListen != "127.0.0.1:4000" || drain != 30*time.Second {
			t.Fatalf("listen %q health %q drain %v", cfg.Listen, cfg.HealthListen, drain)
		}
		if len(cfg.Backends) != 2 || cfg.HealthInterval != time.Second || cfg.MaxIdleConnsPerHost < 256 {
			t.Fatalf("cfg %+v", cfg)
		}
		if cfg.MaxConns != 10000 || cfg.MaxConnsPerClient != 256 || cfg.BodyIdleTimeout != 10*time.Second {
			t.Fatalf("caps %d, %d per client, body stall limit %v", cfg.MaxConns, cfg.MaxConnsPerClient, cfg.BodyIdleTimeout)
		}
	})
	t.Run("ConnCaps", func(t *testing.T) {
		cfg, _, err := parseLB(t, "--max-conns", "5", "--per-client-max-conns", "0", "--backend", "127.0.0.1:3001")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.MaxConns != 5 || cfg.MaxConnsPerClient >= 0 {
			t.Fatalf("caps %d, %d per client: want 5 and none", cfg.MaxConns, cfg.MaxConnsPerClient)
		}
		for _, args := range [][]string{{"--max-conns", "0"}, {"--per-client-max-conns", "-1"}} {
			if _, _, err := parseLB(t, append(args, "--backend", "127.0.0.1:3001")...); err == nil || !strings.Contains(err.Error(), args[0]) {
				t.Errorf("%v: %v, want an error naming the flag", args, err)
			}
		}
	})
	t.Run("Named", func(t *testing.T) {
		cfg, _, err := parseLB(t, "--backend", "backend-1=127.0.0.1:3001", "--backend", "127.0.0.1:3002")
		if err != nil {
			t.Fatal(err)
		}
		if refs, err := cfg.Validate(); err != nil || refs[0].Name != "backend-1" || refs[0].Address != "127.0.0.1:3001" || refs[1].Name != "" {
			t.Fatalf("backends %+v, %v", refs, err)
		}
	})
	t.Run("Hosts", func(t *testing.T) {
		cfg, _, err := parseLB(t, "--host", "127.0.0.1", "--port", "8080", "--health-host", "0.0.0.0", "--health-port", "8081", "--backend", "[::1]:3001")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Listen != "127.0.0.1:8080" || cfg.HealthListen != "0.0.0.0:8081" {
			t.Fatalf("listen %q health %q", cfg.Listen, cfg.HealthListen)
		}
	})
	t.Run("InheritedSockets", func(t *testing.T) {
		cfg, _, err := parseLB(t, "--listen-fd", "3", "--health-listen-fd", "4", "--backend", "127.0.0.1:3001")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ListenFD != 3 || cfg.HealthListenFD != 4 || cfg.Listen != ":3000" {
			t.Fatalf("cfg %+v", cfg)
		}
	})
	t.Run("SamePortOtherAddress", func(t *testing.T) {
		if _, _, err := parseLB(t, "--host", "127.0.0.2", "--port", "5000", "--health-port", "5000", "--backend", "127.0.0.1:3001"); err != nil {
			t.Fatal(err)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"NoBackend", nil, "no backend given"},
		{"BadBackend", []string{"--backend", "localhost"}, `backend "localhost": want host:port`},
		{"HTTPS", []string{"--backend", "https://127.0.0.1:3001"}, `scheme "https" not supported`},
		{"BadName", []string{"--backend", "back end=127.0.0.1:3001"}, `backend name "back end"`},
		{"Duplicate", []string{"--backend", "127.0.0.1:3001", "--backend", "http://127.0.0.1:3001"}, "given twice"},
		{"PortZero", []string{"--port", "0", "--backend", "127.0.0.1:3001"}, "--port 0: want a port from 1 to 65535"},
		{"PortTooBig", []string{"--health-port", "70000", "--backend", "127.0.0.1:3001"}, "--health-port 70000"},
		{"SamePorts", []string{"--port", "5000", "--health-port", "5000", "--backend", "127.0.0.1:3001"}, "must differ"},
		{"NotANumber", []string{"--port", "x", "--backend", "127.0.0.1:3001"}, "invalid value"},
		{"Positional", []string{"127.0.0.1:3001"}, `unexpected argument "127.0.0.1:3001"`},
		{"BadDrain", []string{"--drain-timeout", "-1s", "--backend", "127.0.0.1:3001"}, "--drain-timeout"},
		{"StdioFD", []string{"--health-listen-fd", "2", "--backend", "127.0.0.1:3001"}, "--health-listen-fd 2: want an inherited descriptor"},
		{"SameFD", []string{"--listen-fd", "5", "--health-listen-fd", "5", "--backend", "127.0.0.1:3001"}, "must differ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseLB(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}
