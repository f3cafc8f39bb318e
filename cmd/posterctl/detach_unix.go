//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// newSession puts the detached supervisor in a session of its own, so that
// no terminal's signals or hang-up reach it.
func newSession(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return nil
}

// closeOnExec keeps an inherited fd from every child: inherited fds are not
// close-on-exec.
func closeOnExec(fd int) { syscall.CloseOnExec(fd) }
