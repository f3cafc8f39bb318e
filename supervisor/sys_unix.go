//go:build unix

package supervisor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

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

// signalGroup sends sig to the process group pgid: a child and whatever it
// started.
func signalGroup(pgid int, sig syscall.Signal) error { return syscall.Kill(-pgid, sig) }

// signalPid sends sig to one process.
func signalPid(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

// checkOwner refuses a run dir that belongs to another user.
func checkOwner(dir string, fi os.FileInfo) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("run dir %s belongs to uid %d, not to us (uid %d)", dir, st.Uid, os.Getuid())
	}
	return nil
}

// flock takes f's exclusive lock without waiting; errLocked when another
// process holds it.
func flock(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLocked
	}
	return err
}
