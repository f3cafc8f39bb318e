package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/posterctl/posterctl/app/web"
	"github.com/posterctl/posterctl/fwdauth"
	"github.com/posterctl/posterctl/proxy"
	"github.com/urfave/cli/v2"
)

// drainTimeout is how long in-flight requests may take after SIGTERM.
const drainTimeout = 10 * time.Second

// backendConfig holds the flags of `posterctl backend`.
type backendConfig struct {
	Port int
	Host string
	DB   string
	Name string
	// ListenFD is an inherited listening socket to serve on (0: bind
	// --host and --port here); see listenBackend.
	ListenFD int
	// ProxySecretFile holds the secret the cluster's LB sends; proxySecret
	// is its value, read by resolve.
	ProxySecretFile string
	proxySecret     string
	// StoreID is the cluster's store id: a store with another one is
	// another data set, and /healthz keeps the backend out of rotation.
	StoreID string
}

// resolve applies the positional PORT and the defaults that depend on other
// settings, then validates.
func (cfg *backendConfig) resolve(c *cli.Context) error {
	switch c.NArg() {
	case 0:
	case 1:
		p, err := strconv.Atoi(c.Args().First())
		if err != nil {
			return fmt.Errorf("invalid port %q: want a number from 1 to 65535", c.Args().First())
		}
		if c.IsSet("port") && p != cfg.Port {
			return fmt.Errorf("port given twice: %d as argument and %d as --port", p, cfg.Port)
		}
		cfg.Port = p
	default:
		// urfave/cli v2 stops reading flags at the first argument.
		for _, a := range c.Args().Tail() {
			if strings.HasPrefix(a, "-") {
				return fmt.Errorf("flag %s after PORT: put flags first, as in posterctl backend --db FILE %s", a, c.Args().First())
			}
		}
		return fmt.Errorf("too many arguments %q: want at most one PORT", c.Args().Slice())
	}
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("backend-%d", cfg.Port)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.ProxySecretFile != "" {
		s, err := fwdauth.ReadFile(cfg.ProxySecretFile)
		if err != nil {
			return fmt.Errorf("--proxy-secret-file: %w", err)
		}
		cfg.proxySecret = s
	}
	return nil
}

// Validate reports the first setting that cannot work.
func (cfg *backendConfig) Validate() error {
	if cfg.Port < 1 || cfg.Port > 65535 {
		return fmt.Errorf("invalid port %d: want a number from 1 to 65535", cfg.Port)
	}
	if net.ParseIP(cfg.Host) == nil && cfg.Host != "localhost" {
		return fmt.Errorf("invalid --host %q: want an IP address such as 127.0.0.1 or 0.0.0.0", cfg.Host)
	}
	if err := checkDB(cfg.DB); err != nil {
		return fmt.Errorf("invalid --db: %w", err)
	}
	if cfg.ListenFD != 0 && cfg.ListenFD < 3 {
		return fmt.Errorf("invalid --listen-fd %d: want an inherited descriptor, 3 or above", cfg.ListenFD)
	}
	if !validName(cfg.Name) {
		return fmt.Errorf("invalid --name %q: want 1 to 64 printable ASCII characters without spaces", cfg.Name)
	}
	return nil
}

// validName keeps the name usable as an HTTP header value and a log field.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

func backendCommand() *cli.Command { return newBackendCommand(runBackend) }

// newBackendCommand builds the command around run, so that tests can parse
// real command lines without starting a server.
func newBackendCommand(run func(*cli.Context, *backendConfig) error) *cli.Command {
	cfg := &backendConfig{}
	return &cli.Command{
		Name:      "backend",
		Usage:     "run one Poster app backend (HTTP API and web page) on a shared SQLite or PostgreSQL store",
		ArgsUsage: "[PORT]",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "port", Aliases: []string{"p"}, Value: 3001, Usage: "port to listen on (also accepted as the first argument)", Destination: &cfg.Port},
			&cli.StringFlag{Name: "host", Value: "127.0.0.1", Usage: "address to listen on", Destination: &cfg.Host},
			// The environment variable keeps a PostgreSQL password out of
			// the process list, where every local user can read argv.
			&cli.StringFlag{Name: "db", Value: "./data/poster.db", EnvVars: []string{"POSTERCTL_DB"}, Usage: "store shared by all backends: a SQLite file (its directory is created) or postgres://user:password@host:5432/db", Destination: &cfg.DB},
			&cli.StringFlag{Name: "name", Usage: "name sent in the X-Backend header (default backend-PORT)", Destination: &cfg.Name},
			&cli.IntFlag{Name: "listen-fd", Usage: "serve on this inherited listening socket (it must be bound to --port) instead of binding --port", Destination: &cfg.ListenFD},
			&cli.StringFlag{Name: "proxy-secret-file", Usage: "file (mode 0600) with the cluster's proxy secret: X-Forwarded-For and -Proto are believed only from requests carrying it (without it, from nobody)", Destination: &cfg.ProxySecretFile},
			&cli.StringFlag{Name: "store-id", Usage: "the cluster's store id: with another store id in --db, /healthz answers 503 (another data set)", Destination: &cfg.StoreID},
		},
		Action: func(c *cli.Context) error {
			if err := cfg.resolve(c); err != nil {
				return cli.Exit("backend: "+err.Error(), 2)
			}
			return run(c, cfg)
		},
	}
}

func runBackend(c *cli.Context, cfg *backendConfig) error {
	// A backend's live heap is small and a request's allocations die with
	// it: collect less often than the default, as the LB does, unless the
	// user chose with GOGC.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	// An access line per request, batched off a terminal as the LB's are:
	// under up, a write per line costs this process and the supervisor
	// that relays it more than the line itself.
	var out io.Writer = os.Stderr
	if !isatty.IsTerminal(os.Stderr.Fd()) {
		lw := proxy.NewLogWriter(os.Stderr, 100*time.Millisecond)
		defer lw.Close()
		out = lw
	}
	log, err := buildLogger(out, c.String("log-format"), c.String("log-level"))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	log = log.With().Str("component", "backend").Str("backend", cfg.Name).Logger()
	ignoreHangup()

	// Signals are caught from the start, so a SIGTERM during start-up still
	// ends in an orderly exit. After the first one, stop() restores the
	// default action: a second Ctrl+C kills at once.
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	db, err := openStore(ctx, cfg.DB)
	if err != nil {
		return cli.Exit("backend: "+err.Error(), 1)
	}
	defer db.Close()

	srv := web.NewServer(db, cfg.Name, log)
	srv.ProxySecret = cfg.proxySecret
	srv.ExpectStoreID = cfg.StoreID
	if err := listenBackend(srv, cfg); err != nil {
		return cli.Exit("backend: "+err.Error(), 1)
	}
	log.Info().
		Int("port", cfg.Port).
		Int("pid", os.Getpid()).
		Str("db", redactDB(cfg.DB)).
		Str("url", srv.URL()).
		Bool("proxy_secret", cfg.proxySecret != "").
		Msg("backend listening")
	// Said once the port is ours, so that a start that fails is one line.
	if t, ok := db.(interface{ Tightened() []string }); ok {
		for _, line := range t.Tightened() {
			log.Warn().Msg(line)
		}
	}

	<-ctx.Done()
	stop()
	log.Info().Msg("shutting down: finishing in-flight requests")
	drainCtx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := srv.Close(drainCtx); err != nil {
		log.Warn().Err(err).Msg("in-flight requests cut off after the drain timeout")
	}
	if err := db.Close(); err != nil {
		log.Error().Err(err).Msg("close store")
		return cli.Exit("backend: close store: "+err.Error(), 1)
	}
	log.Info().Msg("backend stopped")
	return nil
}
