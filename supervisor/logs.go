package supervisor

import (
	"fmt"
	"io"
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
