package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/posterctl/posterctl/cluster"
	"github.com/posterctl/posterctl/supervisor"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

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

// childLogFormatDetached is childLogFormat for a detached cluster, whose
// logs are files, never a terminal.
func childLogFormatDetached(c *cli.Context) string {
	if f := c.String("log-format"); f != "auto" {
		return f
	}
	return "json"
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
	// Refused at once (a cluster runs, a port is taken): before the store
	// is created.
	if err := supervisor.Precheck(c.Context, cluster.Plan(cfg.Settings, cluster.Run{Exe: exe})); err != nil {
		return fail("up: "+err.Error(), 1)
	}
	storeID, err := preflightStore(c.Context, cfg.DBPath())
	if err != nil {
		return fail("up: "+err.Error(), 1)
	}

	var sink supervisor.LineSink
	var files *supervisor.FileSink
	logFormat := childLogFormat(c, os.Stdout)
	if cfg.supervise {
		if files, err = supervisor.NewFileSink(filepath.Join(cfg.RunDir, supervisor.LogsDir), cfg.logRotation()); err != nil {
			return fail("up: "+err.Error(), 1)
		}
		defer files.Close()
		sink, logFormat = files, childLogFormatDetached(c)
		// Our own log too is rotated and reopened with the children's.
		if l, err := buildLogger(files.Writer(supervisorLogName), logFormat, c.String("log-level")); err == nil {
			log = l.With().Str("component", "supervisor").Logger()
		}
	}
	scfg := cluster.Plan(cfg.Settings, cluster.Run{Exe: exe, LogFormat: logFormat, LogLevel: c.String("log-level"), Store: redactDB(cfg.DBPath()), StoreID: storeID})
	if sink == nil {
		sink = supervisor.NewPrefixSink(os.Stdout, isatty.IsTerminal(os.Stdout.Fd()), scfg.ChildNames())
	}
	scfg.Sink = sink
	sup, err := supervisor.New(scfg, log)
	if err != nil {
		return fail("up: "+err.Error(), 2)
	}
	defer sup.Close()
	var notify *notifier // systemd's, for a foreground up only
	if !cfg.supervise {
		notify = newNotifier(log)
	}
	defer notify.Stopping()
	notify.Starting(len(scfg.Specs))

	// Signals are ours from here on: the children sit in their own process
	// groups, so a terminal's Ctrl+C reaches only this process.
	raw := make(chan os.Signal, 2)
	// SIGHUP too: a closed terminal should stop the cluster in order, not
	// leave it to the parent-death signal. Detached, it reopens the logs.
	signal.Notify(raw, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(raw)
	sigs, stopHangups := hangupReopens(raw, files, log)
	defer stopHangups()

	startCtx, cancelStart := context.WithCancel(c.Context)
	defer cancelStart()
	started := make(chan error, 1)
	go func() { started <- sup.Start(startCtx) }()
	select {
	case err = <-started:
	case sig := <-sigs:
		log.Warn().Str("signal", sig.String()).Msg("interrupted during start-up; stopping")
		notify.Stopping()
		cancelStart()
		<-started
		return fail("up: interrupted during start-up", 130)
	}
	if err != nil {
		return fail(startFailure(err, files), 1)
	}
	ready := cluster.ReadyLine(cfg.Settings, scfg, time.Since(begun), os.Getpid())
	log.Info().Stringer("after", time.Since(begun).Round(time.Millisecond)).Str("url", scfg.URL).Msg("cluster ready")
	if !cfg.supervise {
		fmt.Fprintln(os.Stdout, ready)
	}
	report(startReport{OK: true, Message: ready})
	notify.Ready(c.Context, sup, scfg.URL)

	select {
	case sig := <-sigs:
		log.Info().Str("signal", sig.String()).Msg("stopping gracefully; press Ctrl+C again to kill everything at once")
		notify.Stopping()
		sup.Stop(cfg.Grace)
	case <-sup.Stopped(): // posterctl down
		notify.Stopping()
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
