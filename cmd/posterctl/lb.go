package main

import (
	"github.com/urfave/cli/v2"
)

func lbCommand() *cli.Command {
	return &cli.Command{
		Name:  "lb",
		Usage: "not implemented yet",
		Action: func(c *cli.Context) error {
			return cli.Exit("lb: not implemented yet", 2)
		},
	}
}
