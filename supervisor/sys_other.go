//go:build !unix

package supervisor

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
)

// The supervisor relies on Unix process groups and signals (to stop a child
// with everything it started), flock (one supervisor per run dir), file
// ownership (a run dir nobody else controls) and inheritable sockets. Where
// they are missing it refuses at run time, naming what is missing, rather
// than run a cluster it could not stop cleanly or keep to itself.
func unsupported(what string) error {
	return fmt.Errorf("%s is not supported on %s: posterctl's supervisor needs a Unix system", what, runtime.GOOS)
}

func socketFile(_ *net.TCPListener, addr string) (*os.File, error) {
	return nil, fmt.Errorf("listen %s: %w", addr, unsupported("passing a listening socket to a child"))
}

func signalGroup(int, syscall.Signal) error { return unsupported("signalling a process group") }

func signalPid(int, syscall.Signal) error { return unsupported("signalling a process") }

func checkOwner(dir string, _ os.FileInfo) error {
	return fmt.Errorf("run dir %s: %w", dir, unsupported("checking who owns the run dir"))
}

func flock(*os.File) error { return unsupported("locking the run dir") }

func childAttr() (*syscall.SysProcAttr, error) {
	return nil, unsupported("running a child in its own process group")
}

const orphanWarning = ""
