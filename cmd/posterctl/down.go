package main

import (
	"github.com/urfave/cli/v2"
)

func downCommand() *cli.Command {
	return &cli.Command{
		Name:  "down",
		Usage: "not implemented yet",
		Action: func(c *cli.Context) error {
			return cli.Exit("down: not implemented yet", 2)
		},
	}
}
