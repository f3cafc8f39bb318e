package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/posterctl/posterctl/app/store"
	"github.com/posterctl/posterctl/proxy"
	"github.com/posterctl/posterctl/supervisor"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"
)

// readyFDEnv tells a detached supervisor which inherited fd to report its
// start-up outcome on; the `up -d` that started it waits for that one line.
const readyFDEnv = "POSTERCTL_READY_FD"

// upConfig holds the flags of `posterctl up`; the defaults live in upFlags
// and, commented, in configs/posterctl.yaml.
type upConfig struct {
	Backends     int
	Port         int
	HealthPort   int
	BasePort     int
	DataDir      string
	DB           string // empty: <data-dir>/poster.db
	Host         string // where backends listen
	NoLB         bool
	Remote       cli.StringSlice // host:port of backends on other machines
	RunDir       string
	Grace        time.Duration
	ReadyTimeout time.Duration
	Restart      supervisor.RestartPolicy
	Detach       bool
	Config       string
	supervise    bool // this process is the detached supervisor
}

// Validate reports the first setting that cannot work.
func (cfg *upConfig) Validate() error {
	remote := cfg.Remote.Value()
	switch {
	case cfg.Backends < 0 || cfg.Backends > proxy.MaxBackends:
		return fmt.Errorf("invalid --backends %d: want 1 to %d", cfg.Backends, proxy.MaxBackends)
	case cfg.NoLB && len(remote) > 0:
		return errors.New("--remote-backend needs the load balancer: it cannot go with --no-lb (run --no-lb on the backend machines, --remote-backend on the front one)")
	case cfg.Backends == 0 && cfg.NoLB:
		return errors.New("invalid --backends 0 with --no-lb: there would be nothing to run")
	case cfg.Backends == 0 && len(remote) == 0:
		return errors.New("invalid --backends 0: give at least one --remote-backend, or run local backends")
	case cfg.Backends+len(remote) > proxy.MaxBackends:
		return fmt.Errorf("%d local and %d remote backends: the load balancer takes at most %d", cfg.Backends, len(remote), proxy.MaxBackends)
	}
	if net.ParseIP(cfg.Host) == nil && cfg.Host != "localhost" {
		return fmt.Errorf("invalid --host %q: want an IP address such as 127.0.0.1 or 0.0.0.0", cfg.Host)
	}
	type portFlag struct {
		name string
		v    int
	}
	ports := []portFlag{{"--base-port", cfg.BasePort}}
	if !cfg.NoLB { // the LB's ports mean nothing without it
		ports = append(ports, portFlag{"--port", cfg.Port}, portFlag{"--health-port", cfg.HealthPort})
	}
	for _, p := range ports {
		if p.v < 1 || p.v > 65535 {
			return fmt.Errorf("invalid %s %d: want 1 to 65535", p.name, p.v)
		}
	}
	if last := cfg.BasePort + cfg.Backends - 1; last > 65535 {
		return fmt.Errorf("invalid --base-port %d: %d backends would need ports up to %d", cfg.BasePort, cfg.Backends, last)
	}
	if !cfg.NoLB {
		if cfg.Port == cfg.HealthPort {
			return fmt.Errorf("--port and --health-port are both %d: they must differ", cfg.Port)
		}
		for _, p := range ports[1:] {
			if p.v >= cfg.BasePort && p.v < cfg.BasePort+cfg.Backends {
				return fmt.Errorf("%s %d collides with the backend ports %d-%d", p.name, p.v, cfg.BasePort, cfg.BasePort+cfg.Backends-1)
			}
		}
	}
	if _, err := cfg.remoteAddrs(); err != nil {
		return err
	}
	if cfg.DB != "" {
		// store.Check never puts the password in its error.
		if err := store.Check(cfg.DB); err != nil {
			return fmt.Errorf("invalid --db: %w", err)
		}
	}
	if cfg.DataDir == "" {
		return errors.New("invalid --data-dir: empty")
	}
	if cfg.RunDir == "" {
		return errors.New("invalid --run-dir: empty")
	}
	if cfg.Grace < 0 {
		return fmt.Errorf("invalid --grace %v: want 0 or more", cfg.Grace)
	}
	if cfg.ReadyTimeout <= 0 {
		return fmt.Errorf("invalid --ready-timeout %v: want a positive duration", cfg.ReadyTimeout)
	}
	if err := cfg.Restart.Validate(); err != nil {
		return fmt.Errorf("invalid restart settings: %w", err)
	}
	return nil
}

// remoteAddrs normalises --remote-backend to host:port, as the LB does, and
// refuses duplicates and addresses of our own backends.
func (cfg *upConfig) remoteAddrs() ([]string, error) {
	seen := map[string]bool{}
	for i := range cfg.Backends {
		seen[cfg.backendAddr(cfg.BasePort+i)] = true
	}
	var out []string
	for _, raw := range cfg.Remote.Value() {
		a, err := proxy.ParseBackend(raw)
		if err != nil {
			return nil, fmt.Errorf("invalid --remote-backend: %w", err)
		}
		if seen[a] {
			return nil, fmt.Errorf("invalid --remote-backend %s: given twice, or it is one of the local backends", a)
		}
		seen[a] = true
		out = append(out, a)
	}
	return out, nil
}

// backendAddr is where the LB and the readiness check reach a local
// backend: its listen address, or loopback when it listens everywhere.
func (cfg *upConfig) backendAddr(port int) string {
	host := cfg.Host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// dbPath is the store every backend opens.
func (cfg *upConfig) dbPath() string {
	if cfg.DB != "" {
		return cfg.DB
	}
	return filepath.Join(cfg.DataDir, "poster.db")
}

func upFlags(cfg *upConfig) []cli.Flag {
	def := supervisor.DefaultRestartPolicy()
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "YAML file with any of these settings (see configs/posterctl.yaml); flags override it", Destination: &cfg.Config},
		altsrc.NewIntFlag(&cli.IntFlag{Name: "backends", Value: 2, Usage: "number of backend processes", Destination: &cfg.Backends}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "port", Value: 3000, Usage: "load balancer port (the app's URL)", Destination: &cfg.Port}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "health-port", Value: 4000, Usage: "load balancer health and metrics port (127.0.0.1)", Destination: &cfg.HealthPort}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "base-port", Value: 3001, Usage: "port of the first backend; the next ones count up", Destination: &cfg.BasePort}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "data-dir", Value: "./data", Usage: "directory of the shared SQLite store poster.db", Destination: &cfg.DataDir}),
		// POSTERCTL_DB keeps a password out of the process list; the
		// supervisor hands it to the backends the same way.
		altsrc.NewStringFlag(&cli.StringFlag{Name: "db", EnvVars: []string{"POSTERCTL_DB"}, Usage: "store of every backend: postgres://user:password@host:5432/db, or a SQLite file (default <data-dir>/poster.db)", Destination: &cfg.DB}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "host", Value: "127.0.0.1", Usage: "address the backends listen on (0.0.0.0 to serve a load balancer on another machine)", Destination: &cfg.Host}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "no-lb", Usage: "run backends only, for a load balancer on another machine", Destination: &cfg.NoLB}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "remote-backend", Usage: "host:port of a backend on another machine for the load balancer (repeat for each)", Destination: &cfg.Remote}),
		altsrc.NewStringFlag(runDirFlag(&cfg.RunDir)),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "grace", Value: 10 * time.Second, Usage: "on stop, how long children may drain before SIGKILL", Destination: &cfg.Grace}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "ready-timeout", Value: 30 * time.Second, Usage: "how long one start of a child may take to answer its health check", Destination: &cfg.ReadyTimeout}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "restart-backoff-min", Value: def.MinBackoff, Usage: "delay before the first restart of a crashed child", Destination: &cfg.Restart.MinBackoff}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "restart-backoff-max", Value: def.MaxBackoff, Usage: "the restart delay doubles up to this", Destination: &cfg.Restart.MaxBackoff}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "restart-reset", Value: def.ResetAfter, Usage: "uptime after which the restart delay starts over", Destination: &cfg.Restart.ResetAfter}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "restart-limit", Value: def.Limit, Usage: "restarts allowed within --restart-window before a child is fatal", Destination: &cfg.Restart.Limit}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "restart-window", Value: def.Window, Usage: "window for --restart-limit", Destination: &cfg.Restart.Window}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "return once the cluster is ready and leave the supervisor running (logs in <run-dir>/logs)", Destination: &cfg.Detach}),
		&cli.BoolFlag{Name: "supervise", Hidden: true, Destination: &cfg.supervise},
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
			return detach(c, cfg)
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
			if err := cfg.Validate(); err != nil {
				return cli.Exit("up: "+err.Error(), 2)
			}
			return run(c, cfg)
		},
	}
}

// loadConfigFile applies a YAML file to every flag not set on the command
// line or in the environment. Unknown keys are an error: a misspelt setting
// that silently does nothing is worse than no config file.
func loadConfigFile(c *cli.Context, path string, flags []cli.Flag) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var keys map[string]any
	if err := yaml.Unmarshal(b, &keys); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	var known []string
	for _, f := range flags {
		if _, ok := f.(altsrc.FlagInputSourceExtension); ok {
			known = append(known, f.Names()[0])
		}
	}
	for k := range keys {
		if !slices.Contains(known, k) {
			return fmt.Errorf("config %s: unknown setting %q (known: %s)", path, k, strings.Join(known, ", "))
		}
	}
	src, err := altsrc.NewYamlSourceFromFile(path)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if err := altsrc.ApplyInputSourceValues(c, src, flags); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// childLogFormat is the log format children get: what the user chose, with
// auto resolved here, because a child's stdout is always our pipe.
func childLogFormat(c *cli.Context, out *os.File) string {
	if f := c.String("log-format"); f != "auto" {
		return f
	}
	if isatty.IsTerminal(out.Fd()) {
		return "console"
	}
	return "json"
}

// clusterConfig turns the flags into the supervisor's children.
func clusterConfig(cfg *upConfig, exe, logFormat, logLevel string, sink supervisor.LineSink) supervisor.Config {
	env := []string{"POSTERCTL_LOG_FORMAT=" + logFormat, "POSTERCTL_LOG_LEVEL=" + logLevel,
		// Through the environment, not argv: every local user can read a
		// process's arguments, and a PostgreSQL URL may carry a password.
		"POSTERCTL_DB=" + cfg.dbPath()}
	var specs []supervisor.Spec
	newBackend := func(name string, port int) supervisor.Spec {
		addr := cfg.backendAddr(port)
		return supervisor.Spec{
			Name:     name,
			Path:     exe,
			Args:     []string{"backend", "--port", strconv.Itoa(port), "--host", cfg.Host, "--name", name},
			Env:      env,
			Port:     port,
			Addr:     addr,
			ReadyURL: "http://" + addr + "/healthz",
		}
	}
	var addrs []string
	for i := range cfg.Backends {
		b := newBackend(fmt.Sprintf("backend-%d", i+1), cfg.BasePort+i)
		specs = append(specs, b)
		addrs = append(addrs, b.Addr)
	}
	remote, _ := cfg.remoteAddrs() // checked by Validate
	out := supervisor.Config{
		RunDir:       cfg.RunDir,
		Restart:      cfg.Restart,
		ReadyTimeout: cfg.ReadyTimeout,
		Sink:         sink,
		DataDir:      cfg.DataDir,
		Store:        store.Redact(cfg.dbPath()),
		Remote:       remote,
		NewBackend:   newBackend,
		BasePort:     cfg.BasePort,
	}
	if !cfg.NoLB {
		// The supervisor binds both LB ports and hands them to every LB
		// generation as fds 3 and 4, so `restart lb` refuses no connection.
		lbArgs := func(backends []string) []string {
			args := []string{"lb", "--port", strconv.Itoa(cfg.Port), "--health-port", strconv.Itoa(cfg.HealthPort),
				"--listen-fd", "3", "--health-listen-fd", "4",
				"--drain-timeout", max(cfg.Grace, time.Millisecond).String()}
			for _, a := range backends {
				args = append(args, "--backend", a)
			}
			return args
		}
		out.HealthURL = fmt.Sprintf("http://127.0.0.1:%d/health", cfg.HealthPort)
		out.AdminURL = fmt.Sprintf("http://127.0.0.1:%d", cfg.HealthPort)
		out.URL = fmt.Sprintf("http://127.0.0.1:%d/", cfg.Port)
		out.LBArgs = lbArgs
		specs = append(specs, supervisor.Spec{
			Name: "lb", Path: exe, Args: lbArgs(append(addrs, remote...)), Env: env,
			Port: cfg.Port, Extra: []int{cfg.HealthPort},
			Listen:   []string{net.JoinHostPort("", strconv.Itoa(cfg.Port)), net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.HealthPort))},
			Handover: true,
			ReadyURL: out.HealthURL, Stage: 1,
		})
	}
	out.Specs = specs
	return out
}

// runUp is the supervisor: in the foreground, or as the detached process
// that `up -d` started.
func runUp(c *cli.Context, cfg *upConfig, log zerolog.Logger) error {
	begun := time.Now()
	report := readyReporter(cfg.supervise)
	fail := func(msg string, code int) error {
		report(startReport{Error: msg})
		return cli.Exit(msg, code)
	}
	exe, err := os.Executable()
	if err != nil {
		return fail("up: find own executable: "+err.Error(), 1)
	}
	for _, d := range []*string{&cfg.DataDir, &cfg.RunDir} {
		if *d, err = filepath.Abs(*d); err != nil {
			return fail("up: "+err.Error(), 2)
		}
	}
	if err := checkDataDir(cfg.DataDir); err != nil && cfg.DB == "" {
		return fail("up: "+err.Error(), 1)
	}
	if err := checkStoreReachable(c.Context, cfg.DB); err != nil {
		return fail("up: "+err.Error(), 1)
	}

	var sink supervisor.LineSink
	var files *supervisor.FileSink
	logFormat := childLogFormat(c, os.Stdout)
	if cfg.supervise {
		if files, err = supervisor.NewFileSink(filepath.Join(cfg.RunDir, supervisor.LogsDir)); err != nil {
			return fail("up: "+err.Error(), 1)
		}
		defer files.Close()
		sink, logFormat = files, childLogFormatDetached(c)
	}
	scfg := clusterConfig(cfg, exe, logFormat, c.String("log-level"), nil)
	if sink == nil {
		sink = supervisor.NewPrefixSink(os.Stdout, isatty.IsTerminal(os.Stdout.Fd()), scfg.ChildNames())
	}
	scfg.Sink = sink
	sup, err := supervisor.New(scfg, log)
	if err != nil {
		return fail("up: "+err.Error(), 2)
	}
	defer sup.Close()

	// Signals are ours from here on: the children sit in their own process
	// groups, so a terminal's Ctrl+C reaches only this process.
	sigs := make(chan os.Signal, 2)
	// SIGHUP too: a closed terminal should stop the cluster in order, not
	// leave it to the parent-death signal.
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	startCtx, cancelStart := context.WithCancel(c.Context)
	defer cancelStart()
	started := make(chan error, 1)
	go func() { started <- sup.Start(startCtx) }()
	select {
	case err = <-started:
	case sig := <-sigs:
		log.Warn().Str("signal", sig.String()).Msg("interrupted during start-up; stopping")
		cancelStart()
		<-started
		return fail("up: interrupted during start-up", 130)
	}
	if err != nil {
		return fail(startFailure(err, files), 1)
	}
	ready := readyLine(cfg, scfg, time.Since(begun))
	log.Info().Dur("after", time.Since(begun)).Str("url", scfg.URL).Msg("cluster ready")
	if !cfg.supervise {
		fmt.Fprintln(os.Stdout, ready)
	}
	report(startReport{OK: true, Message: ready})

	select {
	case sig := <-sigs:
		log.Info().Str("signal", sig.String()).Msg("stopping gracefully; press Ctrl+C again to kill everything at once")
		sup.Stop(cfg.Grace)
	case <-sup.Stopped(): // posterctl down
	}
	select {
	case <-sup.Stopped():
		log.Info().Msg("every child stopped")
		return nil
	case sig := <-sigs:
		log.Warn().Str("signal", sig.String()).Msg("second signal: killing every child")
		sup.Kill()
		<-sup.Stopped()
		return cli.Exit("interrupted twice: killed every child", 130)
	}
}

// readyLine is the one line `up` prints once the cluster serves.
func readyLine(cfg *upConfig, scfg supervisor.Config, took time.Duration) string {
	what := fmt.Sprintf("app %s, health %s, %d backends", scfg.URL, scfg.HealthURL, cfg.Backends)
	if n := len(scfg.Remote); n > 0 {
		what += fmt.Sprintf(" + %d remote", n)
	}
	if cfg.NoLB {
		what = fmt.Sprintf("%d backends on %s ports %d-%d, no load balancer", cfg.Backends, cfg.Host, cfg.BasePort, cfg.BasePort+cfg.Backends-1)
	}
	return fmt.Sprintf("cluster ready in %v: %s, store %s (supervisor pid %d, run dir %s)",
		took.Round(time.Millisecond), what, scfg.Store, os.Getpid(), cfg.RunDir)
}

// checkDataDir fails early, and without creating anything, for a data dir
// the backends could never create (a path under a regular file, say); they
// create it themselves once the cluster starts.
func checkDataDir(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("data dir %s: %s is not a directory", dir, d)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("data dir %s: %w", dir, err)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// checkStoreReachable opens a PostgreSQL store once before anything starts:
// unreachable or refusing, it would otherwise crash-loop every backend into
// fatal, which takes the whole restart limit to say what one line says now.
// Opening also applies the migrations once, before backends race to. SQLite
// needs no such check; its backends create the file themselves.
func checkStoreReachable(ctx context.Context, db string) error {
	if !store.IsPostgres(db) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	s, err := store.Open(ctx, db)
	if err != nil {
		// The store's errors name the URL with its password masked.
		return err
	}
	return s.Close()
}

func childLogFormatDetached(c *cli.Context) string {
	if f := c.String("log-format"); f != "auto" {
		return f
	}
	return "json"
}

// startFailure explains a failed start in one line, plus the failing
// child's last lines when there are any.
func startFailure(err error, files *supervisor.FileSink) string {
	msg := "up: " + err.Error()
	var se *supervisor.StartError
	if errors.As(err, &se) && se.Tail != "" {
		where := ""
		if files != nil {
			where = " (" + files.LogPath(se.Child) + ")"
		}
		msg += fmt.Sprintf("\nlast lines of %s%s:\n%s", se.Child, where, indent(se.Tail))
	}
	return msg
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

// startReport is the one line a detached supervisor sends back to `up -d`.
type startReport struct {
	OK      bool   `json:"ok"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// readyReporter returns the function that sends the start-up outcome to
// the waiting `up -d`; it does nothing in the foreground, and only the first
// call counts.
func readyReporter(detached bool) func(startReport) {
	fd, err := strconv.Atoi(os.Getenv(readyFDEnv))
	if !detached || err != nil {
		return func(startReport) {}
	}
	os.Unsetenv(readyFDEnv) // not for the children
	// An inherited fd is not close-on-exec; without this every child would
	// hold the pipe open too.
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "ready")
	return func(r startReport) {
		if f == nil {
			return
		}
		_ = json.NewEncoder(f).Encode(r)
		f.Close()
		f = nil
	}
}

// detach starts this binary again as the supervisor, in a new session with
// its output in <run-dir>/logs/supervisor.log, and waits for its report.
func detach(c *cli.Context, cfg *upConfig) error {
	exe, err := os.Executable()
	if err != nil {
		return cli.Exit("up: find own executable: "+err.Error(), 1)
	}
	for _, d := range []*string{&cfg.DataDir, &cfg.RunDir} {
		if *d, err = filepath.Abs(*d); err != nil {
			return cli.Exit("up: "+err.Error(), 2)
		}
	}
	if err := supervisor.PrepareRunDir(cfg.RunDir); err != nil {
		return cli.Exit("up: "+err.Error(), 1)
	}
	logDir := filepath.Join(cfg.RunDir, supervisor.LogsDir)
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return cli.Exit("up: run dir: "+err.Error(), 1)
	}
	logPath := filepath.Join(logDir, "supervisor.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return cli.Exit("up: supervisor log: "+err.Error(), 1)
	}
	defer logFile.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return cli.Exit("up: "+err.Error(), 1)
	}
	defer r.Close()

	args := []string{"--log-format", childLogFormatDetached(c), "--log-level", c.String("log-level"), "up", "--supervise",
		"--backends", strconv.Itoa(cfg.Backends), "--port", strconv.Itoa(cfg.Port),
		"--health-port", strconv.Itoa(cfg.HealthPort), "--base-port", strconv.Itoa(cfg.BasePort),
		"--data-dir", cfg.DataDir, "--run-dir", cfg.RunDir, "--grace", cfg.Grace.String(),
		"--ready-timeout", cfg.ReadyTimeout.String(),
		"--restart-backoff-min", cfg.Restart.MinBackoff.String(), "--restart-backoff-max", cfg.Restart.MaxBackoff.String(),
		"--restart-reset", cfg.Restart.ResetAfter.String(), "--restart-limit", strconv.Itoa(cfg.Restart.Limit),
		"--restart-window", cfg.Restart.Window.String(), "--host", cfg.Host}
	if cfg.NoLB {
		args = append(args, "--no-lb")
	}
	for _, a := range cfg.Remote.Value() {
		args = append(args, "--remote-backend", a)
	}
	cmd := exec.Command(exe, args...)
	// The store through the environment, like the backends get it: argv is
	// readable by every local user.
	cmd.Env = append(os.Environ(), readyFDEnv+"=3", "POSTERCTL_DB="+cfg.DB)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A session of its own: no terminal's signals or hang-up reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return cli.Exit("up: start supervisor: "+err.Error(), 1)
	}
	var rep startReport
	line, readErr := bufio.NewReader(r).ReadBytes('\n')
	if readErr == nil || len(line) > 0 {
		readErr = json.Unmarshal(line, &rep)
	}
	if readErr == nil && rep.OK {
		fmt.Fprintln(c.App.Writer, rep.Message)
		fmt.Fprintf(c.App.Writer, "logs in %s; stop with: posterctl down --run-dir %s\n", logDir, cfg.RunDir)
		return cmd.Process.Release()
	}
	// On failure the supervisor stops everything and exits; wait for it so
	// that nothing runs on once we return.
	_ = cmd.Wait()
	if readErr == nil && rep.Error != "" {
		code := 1
		if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() > 1 {
			code = cmd.ProcessState.ExitCode()
		}
		return cli.Exit(rep.Error, code)
	}
	return cli.Exit(fmt.Sprintf("up: the supervisor exited (%v) before reporting; last lines of %s:\n%s",
		cmd.ProcessState, logPath, indent(lastLines(logPath, 10))), 1)
}

func lastLines(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
