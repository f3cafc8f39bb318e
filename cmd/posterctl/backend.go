package main

import (
	"github.com/urfave/cli/v2"
)

func backendCommand() *cli.Command {
	return &cli.Command{
		Name:  "backend",
		Usage: "not implemented yet",
		Action: func(c *cli.Context) error {
			return cli.Exit("backend: not implemented yet", 2)
		},
	}
}
