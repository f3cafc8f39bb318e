package main

import (
	"github.com/urfave/cli/v2"
)

func upCommand() *cli.Command {
	return &cli.Command{
		Name:  "up",
		Usage: "not implemented yet",
		Action: func(c *cli.Context) error {
			return cli.Exit("up: not implemented yet", 2)
		},
	}
}
