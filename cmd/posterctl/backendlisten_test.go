//go:build unix

package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/posterctl/posterctl/app/web"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// inheritedFD makes a listening socket and returns a bare duplicate of its
// descriptor, as a child finds it after exec, and the listener's port.
func inheritedFD(t *testing.T) (int, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return fd, ln.Addr().(*net.TCPAddr).Port
}

func TestListenBackendInherited(t *testing.T) {
	fd, port := inheritedFD(t)
	srv := web.NewServer(nil, "backend-x", zerolog.Nop())
	if err := listenBackend(srv, &backendConfig{Port: port, Host: "127.0.0.1", ListenFD: fd}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	if got := srv.Addr().(*net.TCPAddr).Port; got != port {
		t.Fatalf("serving on port %d, want the inherited socket's %d", got, port)
	}
	resp, err := http.Get(srv.URL() + "/no-such-path")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Header.Get("X-Backend") != "backend-x" {
		t.Fatalf("answered by %q, want backend-x", resp.Header.Get("X-Backend"))
	}
}

func TestListenBackendInheritedErrors(t *testing.T) {
	t.Run("WrongPort", func(t *testing.T) {
		fd, port := inheritedFD(t)
		srv := web.NewServer(nil, "b", zerolog.Nop())
		err := listenBackend(srv, &backendConfig{Port: port + 1, Host: "127.0.0.1", ListenFD: fd})
		if err == nil || !strings.Contains(err.Error(), "not on --port") {
			t.Fatalf("err = %v, want the port mismatch named", err)
		}
		// listenBackend owns the descriptor: it is closed on the error path.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			syscall.Close(fd)
			t.Fatalf("fd %d left open", fd)
		}
	})
	t.Run("NotOpen", func(t *testing.T) {
		fd, port := inheritedFD(t)
		syscall.Close(fd)
		err := listenBackend(web.NewServer(nil, "b", zerolog.Nop()), &backendConfig{Port: port, Host: "127.0.0.1", ListenFD: fd})
		if err == nil || !strings.Contains(err.Error(), "not open") {
			t.Fatalf("err = %v, want the closed descriptor named", err)
		}
	})
	t.Run("PortTaken", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		port := ln.Addr().(*net.TCPAddr).Port
		err = listenBackend(web.NewServer(nil, "b", zerolog.Nop()), &backendConfig{Port: port, Host: "127.0.0.1"})
		if err == nil || !strings.Contains(err.Error(), "already in use") {
			t.Fatalf("err = %v, want the port in use named", err)
		}
	})
}
