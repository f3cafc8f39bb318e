//go:build unix && !linux && !freebsd

package supervisor

import "syscall"

// childAttr gives the child its own process group. Only Linux and FreeBSD
// have a parent-death signal; elsewhere a SIGKILLed supervisor leaves its
// children running, which Start says in the log.
func childAttr() (*syscall.SysProcAttr, error) {
	return &syscall.SysProcAttr{Setpgid: true}, nil
}

// orphanWarning is logged at start-up where children can outlive a killed
// supervisor.
const orphanWarning = "this system has no parent-death signal: if the supervisor is killed with SIGKILL, its children keep running; stop the cluster with posterctl down"
