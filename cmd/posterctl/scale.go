package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/posterctl/posterctl/supervisor"
	"github.com/urfave/cli/v2"
)

func scaleCommand() *cli.Command {
	var runDir string
	var grace time.Duration
	return &cli.Command{
		Name: "scale",
		Usage: "run N local backends: new ones (next free ports) join the load balancer once healthy; " +
			"removed ones (highest numbered first) are drained, then stopped",
		ArgsUsage: "N",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "grace", Value: 10 * time.Second, Usage: "how long a removed backend may finish its in-flight requests before it is stopped anyway", Destination: &grace},
			runDirFlag(&runDir),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("scale: want exactly one argument N, the number of backends (e.g. posterctl scale 4)", 2)
			}
			n, err := strconv.Atoi(c.Args().First())
			if err != nil || n < 0 {
				return cli.Exit(fmt.Sprintf("scale: invalid N %q: want a number of backends, 0 or more", c.Args().First()), 2)
			}
			if grace < 0 {
				return cli.Exit(fmt.Sprintf("scale: invalid --grace %v: want 0 or more", grace), 2)
			}
			if err := trustRunDir("scale", runDir); err != nil {
				return err
			}
			cl := supervisor.NewClient(runDir)
			defer cl.CloseIdleConnections()
			err = cl.Scale(c.Context, n, grace, func(line string) { fmt.Fprintln(c.App.Writer, line) })
			return opExit("scale", runDir, err)
		},
	}
}
