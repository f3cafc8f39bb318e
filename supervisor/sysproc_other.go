//go:build !linux

package supervisor

import "syscall"

// childAttr gives the child its own process group. Only Linux has a
// parent-death signal; elsewhere a SIGKILLed supervisor leaves its children
// running.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
