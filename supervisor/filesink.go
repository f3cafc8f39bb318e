package supervisor

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"gopkg.in/natefinch/lumberjack.v2"
)

// LogRotation bounds a detached cluster's log files, as supervisord's
// logfile_maxbytes and logfile_backups do.
type LogRotation struct {
	// MaxBytes is the size past which a log file is rotated. lumberjack
	// counts in MiB, so it is rounded up to whole MiB.
	MaxBytes int64
	// MaxFiles is how many rotated files are kept per log, besides the
	// one being written.
	MaxFiles int
}

// Validate reports a rotation that cannot work.
func (r LogRotation) Validate() error {
	if r.MaxBytes < 1 {
		return fmt.Errorf("log max size must be positive, got %d bytes", r.MaxBytes)
	}
	if r.MaxFiles < 1 {
		return fmt.Errorf("log max files must be at least 1, got %d", r.MaxFiles)
	}
	return nil
}

func (r LogRotation) megabytes() int {
	return int(max(1, (r.MaxBytes+(1<<20)-1)>>20))
}

// rotatedLog matches the name lumberjack gives a rotated file:
// <name>-2006-01-02T15-04-05.000.log.
var rotatedLog = regexp.MustCompile(`^(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}\.log$`)

// FileSink writes each child's lines to <dir>/<name>.log, rotated by size.
// lumberjack starts one goroutine per log file for removing old rotated
// files; it has no way to stop it, so it lives as long as the process.
type FileSink struct {
	dir  string
	rot  LogRotation
	mu   sync.Mutex
	logs map[string]*lumberjack.Logger
	buf  []byte // reused by Lines
}

// NewFileSink creates dir (0700) for the log files and starts every log
// afresh: a log left by the previous run becomes one rotated file, so each
// run's logs begin in a new file. The supervisor's own log is the caller's
// (see Writer).
func NewFileSink(dir string, rot LogRotation) (*FileSink, error) {
	if err := rot.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	s := &FileSink{dir: dir, rot: rot, logs: map[string]*lumberjack.Logger{}}
	paths, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".log")
		if name == supervisorLog || rotatedLog.MatchString(filepath.Base(p)) {
			continue
		}
		if err := RotateLog(p, rot); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// RotateLog turns the log at path, when it has anything in it, into a
// rotated file, as the next rotation by size would.
func RotateLog(path string, rot LogRotation) error {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() == 0 {
		return nil
	}
	l := &lumberjack.Logger{Filename: path, MaxSize: rot.megabytes(), MaxBackups: rot.MaxFiles}
	err = l.Rotate()
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("start a new log %s: %w", path, err)
	}
	return nil
}

// LogPath is where the lines of the child called name go.
func (s *FileSink) LogPath(name string) string { return filepath.Join(s.dir, name+".log") }

func (s *FileSink) logger(name string) *lumberjack.Logger {
	l := s.logs[name]
	if l == nil {
		l = &lumberjack.Logger{Filename: s.LogPath(name), MaxSize: s.rot.megabytes(), MaxBackups: s.rot.MaxFiles}
		s.logs[name] = l
	}
	return l
}

// Line implements LineSink. A line that cannot be written is dropped:
// there is nowhere to report it but the log that failed.
func (s *FileSink) Line(name string, line []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// line belongs to the reader's buffer; appending to it could overwrite
	// bytes not yet read.
	buf := make([]byte, 0, len(line)+1)
	_, _ = s.logger(name).Write(append(append(buf, line...), '\n'))
}

// Writer is the rotated log called name, for the supervisor's own log.
func (s *FileSink) Writer(name string) io.Writer { return sinkWriter{s, name} }

type sinkWriter struct {
	s    *FileSink
	name string
}

func (w sinkWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if _, err := w.s.logger(w.name).Write(p); err != nil {
		return len(p), nil // dropped, as Line does
	}
	return len(p), nil
}

// Reopen closes every log file; the next line opens the file at its path
// again, or creates it. It is what SIGHUP does: after logrotate moved a
// file away, the logs go on in a new file.
func (s *FileSink) Reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for _, l := range s.logs {
		if err := l.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Close closes every log file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for n, l := range s.logs {
		if err := l.Close(); err != nil && first == nil {
			first = err
		}
		delete(s.logs, n)
	}
	return first
}
