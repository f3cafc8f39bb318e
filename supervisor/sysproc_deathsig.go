//go:build linux || freebsd

package supervisor

import "syscall"

// childAttr puts the child in its own process group, so a terminal's Ctrl+C
// reaches only the supervisor and a group signal reaches grandchildren too,
// and kills it when the supervisor dies. SIGKILL rather than SIGTERM: with
// the supervisor gone nobody would escalate if a child hung in its drain.
func childAttr() (*syscall.SysProcAttr, error) {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}, nil
}

// orphanWarning is empty: a child dies with its supervisor here.
const orphanWarning = ""
