package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
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
		if err := c.Control(func(fd uintptr) { serr = reusePort(fd) }); err != nil {
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
