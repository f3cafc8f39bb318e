package main

import (
	"errors"
	"os"

	"github.com/posterctl/posterctl/supervisor"
	"github.com/urfave/cli/v2"
)

// trustRunDir is the first step of every client command (status, down,
// logs, restart, scale): the run dir must pass the same check as `up`'s, or
// the command does nothing at all. A missing dir is no cluster, which the
// command itself reports.
func trustRunDir(cmd, runDir string) error {
	err := supervisor.CheckRunDir(runDir)
	if err == nil || errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return cli.Exit(cmd+": refusing the run dir: "+err.Error(), 1)
}
