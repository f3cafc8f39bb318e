//go:build unix

package proxy

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

func reusePort(fd uintptr) error {
	return unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
}

// FileListener turns an inherited file descriptor (systemd socket
// activation, or a parent's exec.Cmd.ExtraFiles: 3, 4, …) into a listener.
// The descriptor must be a listening TCP socket; it is duplicated, and the
// original closed, so the listener alone owns it here. The socket itself
// stays open in every other process holding it, which is what lets two
// balancer generations share one accept queue.
func FileListener(fd int, what string) (net.Listener, error) {
	if fd < 3 {
		return nil, fmt.Errorf("%s fd %d: want an inherited descriptor, 3 or above", what, fd)
	}
	// Check before os.NewFile, which would otherwise wrap a closed number.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return nil, fmt.Errorf("%s fd %d: not open: %w", what, fd, err)
	}
	accepting, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return nil, fmt.Errorf("%s fd %d: not a socket: %w", what, fd, err)
	}
	if accepting != 1 {
		return nil, fmt.Errorf("%s fd %d: socket is not listening", what, fd)
	}
	f := os.NewFile(uintptr(fd), what)
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("%s fd %d: %w", what, fd, err)
	}
	if _, ok := ln.Addr().(*net.TCPAddr); !ok {
		ln.Close()
		return nil, fmt.Errorf("%s fd %d: not a TCP socket (%s)", what, fd, ln.Addr().Network())
	}
	return ln, nil
}
