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
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/posterctl/posterctl/fwdauth"
	"github.com/posterctl/posterctl/proxy"
)

// lbConfig is what `posterctl lb` is told on its command line.
type lbConfig struct {
	Port         int
	HealthPort   int
	Host         string
	HealthHost   string
	Backends     cli.StringSlice
	DrainTimeout time.Duration
	// Connection caps; PerClientMaxConns 0 turns the per-client one off.
	MaxConns          int
	PerClientMaxConns int
	// Inherited listening sockets (0: bind the port here), so that two
	// generations of the balancer share one accept queue during a restart.
	ListenFD       int
	HealthListenFD int
	// Trust: files holding the proxy secret and the admin token (paths, so
	// that the values never appear in argv), and front proxies.
	ProxySecretFile string
	AdminTokenFile  string
	TrustedProxies  cli.StringSlice
}

func lbFlags(cfg *lbConfig) []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "port", Usage: "port the load balancer listens on", Value: 3000, Destination: &cfg.Port},
		&cli.IntFlag{Name: "health-port", Usage: "port for GET /health and GET /metrics", Value: 4000, Destination: &cfg.HealthPort},
		&cli.StringFlag{Name: "host", Usage: "address to listen on (empty: every interface)", Destination: &cfg.Host},
		&cli.StringFlag{Name: "health-host", Usage: "address the health port listens on", Value: "127.0.0.1", Destination: &cfg.HealthHost},
		&cli.StringSliceFlag{Name: "backend", Usage: "backend as host:port or http://host:port, NAME= before it to name it (repeat for each)", Destination: &cfg.Backends},
		&cli.DurationFlag{Name: "drain-timeout", Usage: "how long a stop waits for in-flight requests", Value: 30 * time.Second, Destination: &cfg.DrainTimeout},
		&cli.IntFlag{Name: "max-conns", Usage: "most client connections open at once; beyond, a new one gets 503 and is closed", Value: 10000, Destination: &cfg.MaxConns},
		&cli.IntFlag{Name: "per-client-max-conns", Usage: "most connections open at once from one client address (0: no limit)", Value: 256, Destination: &cfg.PerClientMaxConns},
		&cli.IntFlag{Name: "listen-fd", Usage: "serve on this inherited listening socket instead of binding --port", Destination: &cfg.ListenFD},
		&cli.IntFlag{Name: "health-listen-fd", Usage: "serve the health port on this inherited listening socket instead of binding --health-port", Destination: &cfg.HealthListenFD},
		&cli.StringFlag{Name: "proxy-secret-file", Usage: "file (mode 0600) with the secret sent to every backend, which then believes X-Forwarded-For and -Proto (up makes it in the run dir)", Destination: &cfg.ProxySecretFile},
		&cli.StringFlag{Name: "admin-token-file", Usage: "file (mode 0600) with the bearer token the admin API wants; without it the admin API is disabled", Destination: &cfg.AdminTokenFile},
		&cli.StringSliceFlag{Name: "trusted-proxy", Usage: "CIDR or address of a front proxy whose X-Forwarded-Proto is passed on (repeat for each)", Destination: &cfg.TrustedProxies},
	}
}

// proxyConfig checks the flags and turns them into the proxy's configuration.
func (c *lbConfig) proxyConfig() (proxy.Config, error) {
	for _, p := range []struct {
		flag string
		n    int
	}{{"--port", c.Port}, {"--health-port", c.HealthPort}} {
		if p.n < 1 || p.n > 65535 {
			return proxy.Config{}, fmt.Errorf("%s %d: want a port from 1 to 65535", p.flag, p.n)
		}
	}
	if c.Port == c.HealthPort && overlap(c.Host, c.HealthHost) {
		return proxy.Config{}, fmt.Errorf("--port and --health-port are both %d: they must differ", c.Port)
	}
	if c.HealthHost == "" {
		return proxy.Config{}, fmt.Errorf("--health-host is empty: give an address such as 127.0.0.1")
	}
	if c.DrainTimeout <= 0 {
		return proxy.Config{}, fmt.Errorf("--drain-timeout %v: want a positive duration", c.DrainTimeout)
	}
	for _, f := range []struct {
		flag string
		fd   int
	}{{"--listen-fd", c.ListenFD}, {"--health-listen-fd", c.HealthListenFD}} {
		if f.fd != 0 && f.fd < 3 {
			return proxy.Config{}, fmt.Errorf("%s %d: want an inherited descriptor, 3 or above", f.flag, f.fd)
		}
	}
	if c.MaxConns < 1 {
		return proxy.Config{}, fmt.Errorf("--max-conns %d: want at least 1", c.MaxConns)
	}
	if c.PerClientMaxConns < 0 {
		return proxy.Config{}, fmt.Errorf("--per-client-max-conns %d: want 0 (no limit) or more", c.PerClientMaxConns)
	}
	perClient := c.PerClientMaxConns
	if perClient == 0 {
		perClient = -1 // the proxy's word for no cap
	}
	if c.ListenFD != 0 && c.ListenFD == c.HealthListenFD {
		return proxy.Config{}, fmt.Errorf("--listen-fd and --health-listen-fd are both %d: they must differ", c.ListenFD)
	}
	cfg := proxy.Config{
		Listen:            net.JoinHostPort(c.Host, strconv.Itoa(c.Port)),
		HealthListen:      net.JoinHostPort(c.HealthHost, strconv.Itoa(c.HealthPort)),
		Backends:          c.Backends.Value(),
		ListenFD:          c.ListenFD,
		HealthListenFD:    c.HealthListenFD,
		MaxConns:          c.MaxConns,
		MaxConnsPerClient: perClient,
	}
	if err := c.trust(&cfg); err != nil {
		return proxy.Config{}, err
	}
	cfg.SetDefaults()
	if _, err := cfg.Validate(); err != nil {
		return proxy.Config{}, err
	}
	return cfg, nil
}

// trust reads the secret files and the trusted proxies into cfg.
func (c *lbConfig) trust(cfg *proxy.Config) error {
	var err error
	if c.ProxySecretFile != "" {
		if cfg.ProxySecret, err = fwdauth.ReadFile(c.ProxySecretFile); err != nil {
			return fmt.Errorf("--proxy-secret-file: %w", err)
		}
	}
	if c.AdminTokenFile != "" {
		if cfg.AdminToken, err = fwdauth.ReadFile(c.AdminTokenFile); err != nil {
			return fmt.Errorf("--admin-token-file: %w", err)
		}
	}
	if cfg.TrustedProxies, err = proxy.ParseTrustedProxies(c.TrustedProxies.Value()); err != nil {
		return fmt.Errorf("--trusted-proxy %w", err)
	}
	return nil
}

// overlap reports whether listening on both hosts with one port collides:
// the same address, or either one being every interface.
func overlap(a, b string) bool {
	everywhere := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return a == b || everywhere(a) || everywhere(b)
}

// lbComponent names the balancer in its log lines.
const lbComponent = "lb"

func lbCommand() *cli.Command {
	return newLBCommand(func(c *cli.Context, cfg proxy.Config, drain time.Duration) error {
		ignoreHangup()
		// One access line per request: off a terminal, lines are batched (at
		// most 100 ms late) instead of one write per request.
		var out io.Writer = os.Stderr
		var lw *proxy.LogWriter
		if !isatty.IsTerminal(os.Stderr.Fd()) {
			lw = proxy.NewLogWriter(os.Stderr, 100*time.Millisecond)
			defer lw.Close()
			out = lw
		}
		format := c.String("log-format")
		logger, err := buildLogger(out, format, c.String("log-level"))
		if err != nil {
			return cli.Exit("lb: "+err.Error(), 2)
		}
		// Batched JSON lines (auto is JSON off a terminal) take the access
		// log's own path; console lines stay with zerolog.
		var access *proxy.AccessLog
		if lw != nil && format != "console" {
			access = proxy.NewAccessLog(lw, "component", lbComponent)
		}
		return runLB(c.Context, cfg, drain, logger.With().Str("component", lbComponent).Logger(), access)
	})
}

// newLBCommand parses and checks the command line, then calls run; tests
// pass a stub run to see what a command line resolves to.
func newLBCommand(run func(c *cli.Context, cfg proxy.Config, drain time.Duration) error) *cli.Command {
	cfg := &lbConfig{}
	return &cli.Command{
		Name:      "lb",
		Usage:     "run the load balancer: round robin over healthy backends, with retries and a health port",
		ArgsUsage: " ",
		Flags:     lbFlags(cfg),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return cli.Exit(fmt.Sprintf("lb: unexpected argument %q: backends are given with --backend", c.Args().First()), 2)
			}
			pcfg, err := cfg.proxyConfig()
			if err != nil {
				return cli.Exit("lb: "+err.Error(), 2)
			}
			return run(c, pcfg, cfg.DrainTimeout)
		},
	}
}

func runLB(ctx context.Context, cfg proxy.Config, drain time.Duration, logger zerolog.Logger, access *proxy.AccessLog) error {
	// The balancer's heap is small and its allocations short-lived: collect
	// less often than the default, unless the user chose with GOGC.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	srv, err := proxy.NewServer(cfg, logger, nil)
	if err != nil {
		return cli.Exit("lb: "+err.Error(), 2)
	}
	srv.SetAccessLog(access)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := srv.Open(); err != nil {
		return cli.Exit("lb: "+err.Error(), 1)
	}
	var addrs []string
	for _, b := range srv.Backends() {
		addrs = append(addrs, b.Addr())
	}
	logger.Info().Str("addr", srv.Addr()).Str("health_addr", srv.HealthAddr()).
		Int("listen_fd", cfg.ListenFD).Int("health_listen_fd", cfg.HealthListenFD).Int("pid", os.Getpid()).
		Strs("backends", addrs).Bool("proxy_secret", cfg.ProxySecret != "").Bool("admin_api", cfg.AdminToken != "").
		Msg("load balancer ready")
	if cfg.AdminToken == "" {
		logger.Warn().Msg("the admin API is disabled: no --admin-token-file")
	}

	<-ctx.Done()
	// From here a second signal takes the default action and ends the
	// process at once.
	stop()
	logger.Info().Stringer("drain_timeout", drain).Msg("stopping: draining in-flight requests")
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Close(dctx); err != nil {
		return cli.Exit("lb: "+err.Error(), 1)
	}
	logger.Info().Msg("stopped")
	return nil
}
