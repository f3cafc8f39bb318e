package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/posterctl/posterctl/supervisor"
	"github.com/urfave/cli/v2"
)

// runDirFlag is the --run-dir of up, status and down, which must agree.
func runDirFlag(dest *string) *cli.StringFlag {
	return &cli.StringFlag{
		Name:        "run-dir",
		Value:       supervisor.DefaultRunDir(),
		Usage:       "directory of the control socket, pid file and detached logs (one cluster per run dir)",
		EnvVars:     []string{"POSTERCTL_RUN_DIR"},
		Destination: dest,
	}
}

func statusCommand() *cli.Command {
	var runDir string
	var asJSON bool
	return &cli.Command{
		Name:  "status",
		Usage: "show the supervisor and every child: pid, state, health, restarts, CPU and memory (exit 3 when no cluster runs)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table", Destination: &asJSON},
			runDirFlag(&runDir),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return cli.Exit(fmt.Sprintf("status: unexpected arguments %q", c.Args().Slice()), 2)
			}
			if err := trustRunDir("status", runDir); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
			defer cancel()
			cl := supervisor.NewClient(runDir)
			defer cl.CloseIdleConnections()
			st, err := cl.Status(ctx)
			if errors.Is(err, supervisor.ErrNotRunning) {
				return cli.Exit(fmt.Sprintf("no cluster is running (run dir %s)", runDir), 3)
			}
			if err != nil {
				return cli.Exit("status: "+err.Error(), 1)
			}
			if asJSON {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return writeStatusTable(c.App.Writer, st, time.Now())
		},
	}
}
