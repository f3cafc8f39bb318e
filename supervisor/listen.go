package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
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
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			return fail(fmt.Errorf("cannot listen on %s: no interface of this machine has that address", a))
		}
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
