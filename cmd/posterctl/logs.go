package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/posterctl/posterctl/supervisor"
	"github.com/urfave/cli/v2"
)

// followEvery is how often `logs -f` looks for new lines.
const followEvery = 200 * time.Millisecond

func logsCommand() *cli.Command {
	var runDir string
	var follow, all bool
	var n int
	return &cli.Command{
		Name:      "logs",
		Usage:     "show the child logs of a detached cluster (<run-dir>/logs), merged with name prefixes; NAME shows one child (or supervisor)",
		ArgsUsage: "[NAME]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new lines until Ctrl+C", Destination: &follow},
			&cli.IntFlag{Name: "lines", Aliases: []string{"n"}, Value: 100, Usage: "how many last lines to show first", Destination: &n},
			&cli.BoolFlag{Name: "all", Usage: "show rotated files too (earlier runs); without it only the current run's files", Destination: &all},
			runDirFlag(&runDir),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return cli.Exit(fmt.Sprintf("logs: unexpected arguments %q: want at most one NAME", c.Args().Tail()), 2)
			}
			if n < 0 {
				return cli.Exit(fmt.Sprintf("logs: invalid -n %d: want 0 or more", n), 2)
			}
			runDir = clientRunDir(c, runDir)
			if err := trustRunDir("logs", runDir); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return showLogs(ctx, c, runDir, c.Args().First(), n, follow, all)
		},
	}
}

func showLogs(ctx context.Context, c *cli.Context, runDir, name string, n int, follow, all bool) error {
	dir := filepath.Join(runDir, supervisor.LogsDir)
	t, err := supervisor.OpenLogTail(dir, name)
	if err != nil {
		msg, code := logsProblem(ctx, runDir, err)
		return cli.Exit("logs: "+msg, code)
	}
	if all {
		t.IncludeRotated()
	}
	lines, err := t.Last(n)
	if err != nil {
		return cli.Exit("logs: "+err.Error(), 1)
	}
	w := c.App.Writer
	color := false
	if f, ok := w.(*os.File); ok {
		color = isatty.IsTerminal(f.Fd())
	}
	names := []string{"supervisor"}
	for _, l := range lines {
		names = append(names, l.Name)
	}
	sink := supervisor.NewPrefixSink(w, color, names)
	for _, l := range lines {
		sink.Line(l.Name, []byte(l.Text))
	}
	if !follow {
		return nil
	}
	tick := time.NewTicker(followEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		lines, err := t.Poll()
		if err != nil {
			return cli.Exit("logs: "+err.Error(), 1)
		}
		for _, l := range lines {
			sink.Line(l.Name, []byte(l.Text))
		}
	}
}

// logsProblem explains missing logs: no cluster (exit 3, as status), or one
// in the foreground, whose logs go to its terminal.
func logsProblem(ctx context.Context, runDir string, err error) (string, int) {
	if !errors.Is(err, os.ErrNotExist) {
		return err.Error(), 1
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cl := supervisor.NewClient(runDir)
	defer cl.CloseIdleConnections()
	if st, serr := cl.Status(cctx); serr == nil {
		return fmt.Sprintf("the cluster in %s (supervisor pid %d) runs in the foreground: its logs go to its terminal; only `up -d` keeps them in %s",
			runDir, st.Supervisor.Pid, filepath.Join(runDir, supervisor.LogsDir)) + journalHint(runDir), 1
	}
	return fmt.Sprintf("no cluster is running and no logs in %s (start one with posterctl up -d)", filepath.Join(runDir, supervisor.LogsDir)), 3
}
