package main

import (
	"fmt"
	"os"
	"time"

	"github.com/posterctl/posterctl/cluster"
	"github.com/posterctl/posterctl/supervisor"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
)

// upConfig holds the flags of `posterctl up`; the defaults live in upFlags
// and, commented, in configs/posterctl.yaml.
type upConfig struct {
	cluster.Settings
	remote    cli.StringSlice // becomes Settings.Remote once parsed
	trusted   cli.StringSlice // becomes Settings.TrustedProxies
	Detach    bool
	Config    string
	supervise bool // this process is the detached supervisor
	// Rotation of the detached logs, as supervisord's logfile_maxbytes
	// and logfile_backups.
	LogMaxSize  string
	LogMaxFiles int
}

func upFlags(cfg *upConfig) []cli.Flag {
	def := supervisor.DefaultRestartPolicy()
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "YAML file with any of these settings (see configs/posterctl.yaml); flags override it", Destination: &cfg.Config},
		altsrc.NewIntFlag(&cli.IntFlag{Name: "backends", Value: 2, Usage: "number of backend processes", Destination: &cfg.Backends}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "port", Value: 3000, Usage: "load balancer port (the app's URL)", Destination: &cfg.Port}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "listen", Usage: "address the load balancer's port (the app) listens on: empty for every interface, 127.0.0.1 to keep the app on this machine", Destination: &cfg.Listen}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "health-port", Value: 4000, Usage: "load balancer health and metrics port (127.0.0.1)", Destination: &cfg.HealthPort}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "base-port", Value: 3001, Usage: "port of the first backend; the next ones count up", Destination: &cfg.BasePort}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "data-dir", Value: "./data", Usage: "directory of the shared SQLite store poster.db", Destination: &cfg.DataDir}),
		// POSTERCTL_DB keeps a password out of the process list; the
		// supervisor hands it to the backends the same way.
		altsrc.NewStringFlag(&cli.StringFlag{Name: "db", EnvVars: []string{"POSTERCTL_DB"}, Usage: "store of every backend: postgres://user:password@host:5432/db, or a SQLite file (default <data-dir>/poster.db)", Destination: &cfg.DB}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "host", Value: "127.0.0.1", Usage: "address the backends listen on (0.0.0.0 to serve a load balancer on another machine)", Destination: &cfg.Host}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "no-lb", Usage: "run backends only, for a load balancer on another machine", Destination: &cfg.NoLB}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "remote-backend", Usage: "host:port of a backend on another machine for the load balancer (repeat for each)", Destination: &cfg.remote}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "trusted-proxy", Usage: "CIDR or address of a front proxy (TLS terminator) whose X-Forwarded-Proto the load balancer passes on (repeat for each)", Destination: &cfg.trusted}),
		altsrc.NewStringFlag(runDirFlag(&cfg.RunDir)),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-conns", Value: 10000, Usage: "most client connections the load balancer keeps open; beyond, 503", Destination: &cfg.MaxConns}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "per-client-max-conns", Value: 256, Usage: "most load balancer connections from one client address (0: no limit)", Destination: &cfg.PerClientMaxConns}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "grace", Value: 10 * time.Second, Usage: "on stop, how long children may drain before SIGKILL", Destination: &cfg.Grace}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "ready-timeout", Value: 30 * time.Second, Usage: "how long one start of a child may take to answer its health check", Destination: &cfg.ReadyTimeout}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "restart-backoff-min", Value: def.MinBackoff, Usage: "delay before the first restart of a crashed child", Destination: &cfg.Restart.MinBackoff}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "restart-backoff-max", Value: def.MaxBackoff, Usage: "the restart delay doubles up to this", Destination: &cfg.Restart.MaxBackoff}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "restart-reset", Value: def.ResetAfter, Usage: "uptime after which the restart delay starts over", Destination: &cfg.Restart.ResetAfter}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "restart-limit", Value: def.Limit, Usage: "restarts allowed within --restart-window before a child is fatal", Destination: &cfg.Restart.Limit}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "restart-window", Value: def.Window, Usage: "window for --restart-limit", Destination: &cfg.Restart.Window}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: detachFlag, Aliases: []string{detachAlias}, Usage: "return once the cluster is ready and leave the supervisor running (logs in <run-dir>/logs)", Destination: &cfg.Detach}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-max-size", Value: "50MiB", Usage: "detached logs: rotate a log file past this size (bytes, or with a unit: 50MiB; whole MiB)", Destination: &cfg.LogMaxSize}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "log-max-files", Value: 5, Usage: "detached logs: rotated files kept per log, besides the current one", Destination: &cfg.LogMaxFiles}),
		&cli.BoolFlag{Name: superviseFlag, Hidden: true, Destination: &cfg.supervise},
	}
}

func upCommand() *cli.Command {
	return newUpCommand(func(c *cli.Context, cfg *upConfig) error {
		log, err := newLogger(c)
		if err != nil {
			return cli.Exit(err.Error(), 2)
		}
		log = log.With().Str("component", "supervisor").Logger()
		if cfg.Detach && !cfg.supervise {
			return detach(c, cfg, os.Args[1:])
		}
		return runUp(c, cfg, log)
	})
}

// newUpCommand parses and validates the flags (and --config) into an
// upConfig and hands it to run; tests pass a stub.
func newUpCommand(run func(*cli.Context, *upConfig) error) *cli.Command {
	cfg := &upConfig{}
	flags := upFlags(cfg)
	return &cli.Command{
		Name:  "up",
		Usage: "start the cluster: backends, then the load balancer; restart what crashes (Ctrl+C stops it)",
		Flags: flags,
		Before: func(c *cli.Context) error {
			if err := loadConfigFile(c, cfg.Config, flags); err != nil {
				return cli.Exit(err.Error(), 2)
			}
			return nil
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return cli.Exit(fmt.Sprintf("up: unexpected arguments %q", c.Args().Slice()), 2)
			}
			cfg.Remote = cfg.remote.Value()
			cfg.TrustedProxies = cfg.trusted.Value()
			if err := cfg.Validate(); err != nil {
				return cli.Exit("up: "+err.Error(), 2)
			}
			if err := cfg.validateLogFlags(); err != nil {
				return cli.Exit("up: "+err.Error(), 2)
			}
			if cfg.DB != "" {
				// checkDB never puts the password in its error.
				if err := checkDB(cfg.DB); err != nil {
					return cli.Exit("up: invalid --db: "+err.Error(), 2)
				}
			}
			return run(c, cfg)
		},
	}
}
