//go:build !unix

package main

import (
	"errors"
	"os/exec"
)

func newSession(*exec.Cmd) error {
	return errors.New("up -d needs a Unix system to start the supervisor in a session of its own; run up in the foreground")
}

// closeOnExec does nothing: without up -d no fd is inherited.
func closeOnExec(int) {}
