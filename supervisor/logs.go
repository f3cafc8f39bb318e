package supervisor

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// tail keeps a child's last lines, to explain why it failed.
type tail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func newTail(n int) *tail { return &tail{max: n} }

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == t.max {
		copy(t.lines, t.lines[1:])
		t.lines = t.lines[:t.max-1]
	}
	t.lines = append(t.lines, line)
}

// last is the last line, or "" when there is none.
func (t *tail) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return ""
	}
	return t.lines[len(t.lines)-1]
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

type teeSink struct {
	t    *tail
	next LineSink
}

func (s teeSink) Line(name string, line []byte) {
	s.t.add(string(line))
	s.next.Line(name, line)
}

// PrefixSink writes every child's lines to one writer, each prefixed with
// the child's name, as foreman and docker compose do.
type PrefixSink struct {
	mu    sync.Mutex
	w     io.Writer
	color bool
	width int
	hue   map[string]string
}

var palette = []string{"\x1b[36m", "\x1b[33m", "\x1b[32m", "\x1b[35m", "\x1b[34m", "\x1b[31m"}

// NewPrefixSink prefixes lines with names padded to the longest of names;
// color adds an ANSI colour per name (use it only on a terminal).
func NewPrefixSink(w io.Writer, color bool, names []string) *PrefixSink {
	s := &PrefixSink{w: w, color: color, hue: map[string]string{}}
	for i, n := range names {
		s.width = max(s.width, len(n))
		s.hue[n] = palette[i%len(palette)]
	}
	return s
}

// Line implements LineSink.
func (s *PrefixSink) Line(name string, line []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.color {
		fmt.Fprintf(s.w, "%s%-*s |\x1b[0m %s\n", s.hue[name], s.width, name, line)
		return
	}
	fmt.Fprintf(s.w, "%-*s | %s\n", s.width, name, line)
}

// FileSink appends each child's lines to <dir>/<name>.log.
type FileSink struct {
	dir   string
	mu    sync.Mutex
	files map[string]*os.File
}

// NewFileSink creates dir (0700) for the log files.
func NewFileSink(dir string) (*FileSink, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	return &FileSink{dir: dir, files: map[string]*os.File{}}, nil
}

// LogPath is where the lines of the child called name go.
func (s *FileSink) LogPath(name string) string { return filepath.Join(s.dir, name+".log") }

// Line implements LineSink.
func (s *FileSink) Line(name string, line []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.files[name]
	if f == nil {
		var err error
		f, err = os.OpenFile(s.LogPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return // nowhere to report it but the log we cannot open
		}
		s.files[name] = f
	}
	// line belongs to the reader's buffer; appending to it could overwrite
	// bytes not yet read.
	buf := make([]byte, 0, len(line)+1)
	f.Write(append(append(buf, line...), '\n'))
}

// Close closes every log file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for n, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
		delete(s.files, n)
	}
	return first
}
