//go:build unix

package main

import (
	"os/signal"
	"syscall"
)

// ignoreSIGPIPE makes a write to a closed pipe an error instead of death:
// Go's default kills the process on EPIPE on stdout or stderr, so the first
// log line after `| tee` went away (Ctrl+C kills both) would end the
// supervisor mid-shutdown, leaving its socket, pid file and children behind.
// Every command ignores it; the lines are dropped.
func ignoreSIGPIPE() { signal.Ignore(syscall.SIGPIPE) }

// ignoreHangup keeps a child up when SIGHUP reaches it: the supervisor
// decides what a hang-up means (stop in the foreground, reopen the logs
// when detached), not each child.
func ignoreHangup() { signal.Ignore(syscall.SIGHUP) }
