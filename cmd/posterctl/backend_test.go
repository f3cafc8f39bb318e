package main

import (
	"io"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// parseBackend runs the real backend command line with a stub in place of
// the server and returns the resolved configuration.
func parseBackend(t *testing.T, args ...string) (*backendConfig, error) {
	t.Helper()
	var got *backendConfig
	app := &cli.App{
		Name:           "posterctl",
		Commands:       []*cli.Command{newBackendCommand(func(_ *cli.Context, cfg *backendConfig) error { got = cfg; return nil })},
		ExitErrHandler: func(*cli.Context, error) {},
		Writer:         io.Discard,
		ErrWriter:      io.Discard,
	}
	err := app.Run(append([]string{"posterctl", "backend"}, args...))
	if err == nil && got == nil {
		t.Fatal("the command did not run")
	}
	return got, err
}

func TestBackendConfig(t *testing.T) {
	t.Run("Defaults", func(t *testing.T) {
		cfg, err := parseBackend(t)
		if err != nil {
			t.Fatal(err)
		}
		if *cfg != (backendConfig{Port: 3001, Host: "127.0.0.1", DB: "./data/poster.db", Name: "backend-3001"}) {
			t.Fatalf("cfg = %+v", cfg)
		}
	})

	t.Run("Positional", func(t *testing.T) {
		cfg, err := parseBackend(t, "--db", "x.db", "3002")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Port != 3002 || cfg.Name != "backend-3002" || cfg.DB != "x.db" {
			t.Fatalf("cfg = %+v", cfg)
		}
	})

	t.Run("Postgres", func(t *testing.T) {
		dsn := "postgresql://poster:pw@db.internal:5432/poster?sslmode=require"
		cfg, err := parseBackend(t, "--db", dsn)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.DB != dsn {
			t.Fatalf("cfg = %+v", cfg)
		}
	})

	t.Run("DBFromEnv", func(t *testing.T) {
		// The supervisor passes a connection string this way, so that its
		// password is not in any process's argv.
		t.Setenv("POSTERCTL_DB", "postgres://u:pw@h/db")
		cfg, err := parseBackend(t)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.DB != "postgres://u:pw@h/db" {
			t.Fatalf("cfg = %+v", cfg)
		}
		if cfg, err = parseBackend(t, "--db", "x.db"); err != nil || cfg.DB != "x.db" {
			t.Fatalf("--db should win over POSTERCTL_DB: %+v %v", cfg, err)
		}
	})

	t.Run("Named", func(t *testing.T) {
		cfg, err := parseBackend(t, "--port", "3005", "--name", "backend-5", "--host", "0.0.0.0")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Port != 3005 || cfg.Name != "backend-5" || cfg.Host != "0.0.0.0" {
			t.Fatalf("cfg = %+v", cfg)
		}
	})

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"abc"}, `invalid port "abc"`},
		{[]string{"0"}, "invalid port 0"},
		{[]string{"--port", "65536"}, "invalid port 65536"},
		{[]string{"--port", "3001", "3002"}, "port given twice"},
		{[]string{"3001", "3002"}, "too many arguments"},
		{[]string{"3001", "--db", "x"}, "put flags first"},
		{[]string{"--host", "example.com"}, "invalid --host"},
		{[]string{"--db", ""}, "invalid --db"},
		{[]string{"--db", "mysql://u:p@h/db"}, `invalid --db: unsupported database URL scheme "mysql"`},
		{[]string{"--db", "postgres://u:secret@h:port/db"}, "invalid --db: invalid connection string postgres://xxxxx@h:port/db"},
		{[]string{"--listen-fd", "2"}, "invalid --listen-fd 2"},
		{[]string{"--name", "has space"}, "invalid --name"},
		{[]string{"--name", strings.Repeat("n", 65)}, "invalid --name"},
	} {
		t.Run("Err "+strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := parseBackend(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
}
