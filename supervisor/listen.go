package supervisor

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// bindListeners binds the addresses a child serves on through inherited
// sockets (the LB: its port and health port) and returns them as files for
// exec.Cmd.ExtraFiles, in order. The supervisor keeps them open for the
// cluster's life, so every generation of the child accepts from the same
// queue and a hand-over refuses no connection.
//
// They are bound without SO_REUSEPORT: nothing else needs to bind these
// ports, and without it the bind fails while any other process holds the
// port, which is the check that names the holder. (A socket bound with
// SO_REUSEPORT would silently share the port with a stray LB of ours.)
func bindListeners(ctx context.Context, addrs []string) ([]*os.File, error) {
	var files []*os.File
	fail := func(err error) ([]*os.File, error) {
		closeFiles(files)
		return nil, err
	}
	for _, a := range addrs {
		_, ps, err := net.SplitHostPort(a)
		port, perr := strconv.Atoi(ps)
		if err != nil || perr != nil || port < 1 || port > 65535 {
			return fail(fmt.Errorf("listen address %q: want host:port with a port from 1 to 65535", a))
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fail(portHolder(ctx, port, err))
		}
		f, err := socketFile(l.(*net.TCPListener), a)
		l.Close() // f holds a duplicate; the socket stays open through it
		if err != nil {
			return fail(err)
		}
		files = append(files, f)
	}
	return files, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// socketFile duplicates l's socket into a plain *os.File for ExtraFiles.
// Not TCPListener.File: that file's Fd, which exec calls at every child
// start, puts the socket back into blocking mode, and O_NONBLOCK belongs to
// the socket, shared by every process holding it. An LB generation already
// running would then block in accept(2) where Close cannot wake it, and
// hang in its drain (seen: an old LB stuck until SIGKILL after restart lb).
// os.NewFile of an fd that is already non-blocking leaves the mode alone.
func socketFile(l *net.TCPListener, addr string) (*os.File, error) {
	rc, err := l.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if derr != nil {
		return nil, fmt.Errorf("listen %s: dup: %w", addr, derr)
	}
	return os.NewFile(uintptr(fd), addr), nil
}
