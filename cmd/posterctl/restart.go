package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/posterctl/posterctl/supervisor"
	"github.com/urfave/cli/v2"
)

func restartCommand() *cli.Command {
	var runDir string
	var grace time.Duration
	return &cli.Command{
		Name: "restart",
		Usage: "rolling restart of every backend, one at a time, without dropping a request (drain, stop, start, wait healthy); " +
			"NAME restarts one child; `restart lb` replaces the load balancer on the same sockets. A binary rebuilt in place is picked up.",
		ArgsUsage: "[NAME]",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "grace", Value: 10 * time.Second, Usage: "how long a drained child may finish its in-flight requests before it is stopped anyway", Destination: &grace},
			runDirFlag(&runDir),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return cli.Exit(fmt.Sprintf("restart: unexpected arguments %q: want at most one NAME", c.Args().Tail()), 2)
			}
			if grace < 0 {
				return cli.Exit(fmt.Sprintf("restart: invalid --grace %v: want 0 or more", grace), 2)
			}
			if err := trustRunDir("restart", runDir); err != nil {
				return err
			}
			cl := supervisor.NewClient(runDir)
			defer cl.CloseIdleConnections()
			err := cl.Restart(c.Context, c.Args().First(), grace, func(line string) { fmt.Fprintln(c.App.Writer, line) })
			return opExit("restart", runDir, err)
		},
	}
}

// opExit maps the outcome of restart or scale to an exit: 3 when no
// cluster runs (as status), 1 for a refused or failed operation.
func opExit(cmd, runDir string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, supervisor.ErrNotRunning):
		return cli.Exit(fmt.Sprintf("%s: no cluster is running (run dir %s)", cmd, runDir), 3)
	default:
		return cli.Exit(cmd+": "+err.Error(), 1)
	}
}
