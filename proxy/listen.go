package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// openListener takes the inherited socket fd, or binds addr when fd is 0.
func openListener(fd int, addr, what string) (net.Listener, error) {
	if fd != 0 {
		return FileListener(fd, what)
	}
	return ListenReusePort(addr)
}

// ListenReusePort binds addr with SO_REUSEPORT, so the next generation of the
// balancer can bind the same port while this one still serves. (Queued
// connections of a closing SO_REUSEPORT socket are reset by Linux, so the
// supervisor passes one shared socket instead, see FileListener; this is for
// a balancer started by hand.)
func ListenReusePort(addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("set SO_REUSEPORT: %w", serr)
		}
		return nil
	}}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("listen on %s: address already in use", addr)
		}
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
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

// ListenerFile returns a duplicate of ln's socket to hand to a child through
// exec.Cmd.ExtraFiles, for the child to serve with FileListener.
//
// Use it rather than (*net.TCPListener).File: exec calls Fd on every extra
// file, and Fd on a File from the net package switches the descriptor to
// blocking mode. The mode belongs to the socket, shared by every process
// that holds it, so a balancer already serving on it would then block in
// accept(2) outside Go's poller, where closing the listener cannot wake it:
// its graceful stop hangs. A File made here by os.NewFile leaves the mode
// alone.
func ListenerFile(ln net.Listener) (*os.File, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("listener %s has no descriptor", ln.Addr())
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", ln.Addr(), err)
	}
	dup := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("listener %s: %w", ln.Addr(), err)
	}
	if derr != nil {
		return nil, fmt.Errorf("duplicate listener %s: %w", ln.Addr(), derr)
	}
	return os.NewFile(uintptr(dup), "listener "+ln.Addr().String()), nil
}
