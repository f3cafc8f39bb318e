package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// File names inside the run dir.
const (
	SocketName = "posterctl.sock"
	PidName    = "posterctl.pid"
	lockName   = "posterctl.lock"
	LogsDir    = "logs"
)

// DefaultRunDir is $XDG_RUNTIME_DIR/posterctl, else /tmp/posterctl-<uid>.
func DefaultRunDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "posterctl")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("posterctl-%d", os.Getuid()))
}

// AlreadyRunningError is returned by Start when the run dir has a live cluster.
type AlreadyRunningError struct{ Pid int }

func (e *AlreadyRunningError) Error() string {
	if e.Pid == 0 {
		return "a cluster is already running — run posterctl down first"
	}
	return fmt.Sprintf("a cluster is already running (pid %d) — run posterctl down first", e.Pid)
}

// PrepareRunDir creates dir with mode 0700 and checks it as CheckRunDir
// does.
func PrepareRunDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("run dir: %w", err)
	}
	return CheckRunDir(dir)
}

// CheckRunDir refuses a run dir that is not ours alone: a symlink (its
// target may be anyone's), not a directory, owned by another user, or open
// to others. Every command that uses the run dir checks it, `up` and the
// clients alike: the socket inside accepts commands from whoever can reach
// it, and a pid file planted by another user would have the client signal a
// process of that user's choosing. Tightening a shared directory such as
// /tmp behind the user's back would be worse than refusing. A missing dir is
// an error wrapping os.ErrNotExist.
func CheckRunDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("run dir: %w", err)
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("run dir %s is a symlink: refusing it, since its target may belong to someone else; give the real directory", dir)
	}
	if !fi.IsDir() {
		return fmt.Errorf("run dir %s is not a directory", dir)
	}
	if err := checkOwner(dir, fi); err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("run dir %s has mode %#o: others could reach the control socket; use a directory with mode 0700", dir, perm)
	}
	return nil
}

// runLock is an flock on <run-dir>/posterctl.lock held for the supervisor's
// life; the kernel drops it when the process dies, however it dies, so two
// `up` racing on one run dir cannot both win.
type runLock struct{ f *os.File }

var errLocked = errors.New("run dir is locked by another supervisor")

func lockRunDir(dir string) (*runLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock run dir: %w", err)
	}
	if err := flock(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, err
		}
		return nil, fmt.Errorf("lock run dir: %w", err)
	}
	return &runLock{f: f}, nil
}

func (l *runLock) release() {
	if l != nil && l.f != nil {
		l.f.Close() // closing drops the flock
		l.f = nil
	}
}

// writePidFile records the supervisor's pid, create time and name, so that
// `down` can later tell it apart from an unrelated process with a reused pid.
func writePidFile(dir string, id Identity) error {
	data := fmt.Sprintf("%d\n%d\n%s\n", id.Pid, id.CreateTime, id.Name)
	tmp := filepath.Join(dir, PidName+".tmp")
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, PidName)); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// ReadPidFile reads what writePidFile wrote.
func ReadPidFile(dir string) (Identity, error) {
	b, err := os.ReadFile(filepath.Join(dir, PidName))
	if err != nil {
		return Identity{}, err
	}
	f := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(f) != 3 {
		return Identity{}, fmt.Errorf("pid file %s: malformed", filepath.Join(dir, PidName))
	}
	pid, err1 := strconv.Atoi(f[0])
	ct, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return Identity{}, fmt.Errorf("pid file %s: malformed", filepath.Join(dir, PidName))
	}
	return Identity{Pid: pid, CreateTime: ct, Name: f[2]}, nil
}

// CleanStale removes a socket and pid file left by a supervisor that died
// without cleaning up. It does nothing while a live supervisor holds the lock.
func CleanStale(dir string) error {
	l, err := lockRunDir(dir)
	if err != nil {
		return err
	}
	defer l.release()
	for _, n := range []string{SocketName, PidName} {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", n, err)
		}
	}
	return nil
}

// SignalFromPidFile is `down`'s fallback when the socket does not answer: if
// the pid file names a live process with the recorded create time and name,
// running this very executable, it gets sig. It returns the identity signalled, or a zero one.
func SignalFromPidFile(ctx context.Context, dir string, sig syscall.Signal) (Identity, error) {
	id, err := ReadPidFile(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Identity{}, nil
		}
		return Identity{}, err
	}
	if !id.Alive(ctx) {
		return Identity{}, nil
	}
	if err := id.runsSelf(ctx); err != nil {
		return Identity{}, fmt.Errorf("pid file %s: %w; not signalling it", filepath.Join(dir, PidName), err)
	}
	if err := signalPid(id.Pid, sig); err != nil {
		return Identity{}, fmt.Errorf("signal supervisor %d: %w", id.Pid, err)
	}
	return id, nil
}
