package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"github.com/posterctl/posterctl/app/web"
	"github.com/posterctl/posterctl/proxy"
)

// listenBackend starts srv on the socket the supervisor bound and passed as
// --listen-fd, or binds --host and --port itself. Under `up` the supervisor
// holds each backend's socket for the cluster's life, so its port is never
// free during a restart for another process to take.
func listenBackend(srv *web.Server, cfg *backendConfig) error {
	if cfg.ListenFD == 0 {
		addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
		if err := srv.Open(addr); err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("port %d is already in use on %s", cfg.Port, cfg.Host)
			}
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		return nil
	}
	ln, err := proxy.FileListener(cfg.ListenFD, "--listen-fd")
	if err != nil {
		return err
	}
	// The port is what the LB and the logs know the backend by.
	if got := ln.Addr().(*net.TCPAddr).Port; got != cfg.Port {
		ln.Close()
		return fmt.Errorf("--listen-fd %d listens on port %d, not on --port %d", cfg.ListenFD, got, cfg.Port)
	}
	srv.Serve(ln)
	return nil
}
