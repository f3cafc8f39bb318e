//go:build !unix

package proxy

import (
	"fmt"
	"net"
	"runtime"
)

// reusePort does nothing where SO_REUSEPORT is missing: the balancer serves,
// and a second one on the same port fails to bind with the usual
// address-in-use error.
func reusePort(uintptr) error { return nil }

// FileListener fails: inherited sockets are passed by descriptor number,
// which only Unix systems have.
func FileListener(fd int, what string) (net.Listener, error) {
	return nil, fmt.Errorf("%s fd %d: inherited sockets are not supported on %s", what, fd, runtime.GOOS)
}
