package main

import (
	"os"
	"path/filepath"

	"github.com/posterctl/posterctl/supervisor"
	"github.com/urfave/cli/v2"
)

// serviceRunDir is the run dir of configs/posterctl.service
// (RuntimeDirectory=posterctl, POSTERCTL_RUN_DIR=/run/posterctl).
const serviceRunDir = "/run/posterctl"

// clientRunDir is the run dir of a client command (status, down, logs,
// restart, scale): the one given by --run-dir or POSTERCTL_RUN_DIR, else the
// default one, except that root, finding no cluster there, looks in the
// service's, so that an operator's shell finds the cluster systemd runs.
func clientRunDir(c *cli.Context, runDir string) string {
	return pickRunDir(runDir, c.IsSet("run-dir"), os.Geteuid(), serviceRunDir)
}

func pickRunDir(runDir string, given bool, euid int, service string) string {
	if given || euid != 0 || runDir == service || holdsCluster(runDir) || !holdsCluster(service) {
		return runDir
	}
	return service
}

// holdsCluster reports whether dir has a supervisor's socket or pid file,
// live or stale: either way status and down have something to say there.
func holdsCluster(dir string) bool {
	for _, name := range []string{supervisor.SocketName, supervisor.PidName} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// journalHint points at the journal for the service's cluster, which runs
// `up` in the foreground.
func journalHint(runDir string) string {
	if runDir != serviceRunDir {
		return ""
	}
	return "; the service's go to the journal: journalctl -u posterctl"
}
