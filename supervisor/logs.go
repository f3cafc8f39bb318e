package supervisor

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"sync"
)

// tail keeps a child's last lines, to explain why it failed. It sees every
// line a child writes (an access line per request for the LB), so it reuses
// its buffers rather than allocating one per line.
type tail struct {
	mu    sync.Mutex
	max   int
	lines [][]byte // a ring: the oldest at next once full
	next  int
}

func newTail(n int) *tail { return &tail{max: n} }

func (t *tail) add(line string) { t.addBytes([]byte(line)) }

func (t *tail) addBytes(line []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addLocked(line)
}

// addLines adds a batch of lines under one lock. Of a batch longer than the
// ring only the last lines would stay, so only they are copied: the LB's
// batches of access lines are hundreds long.
func (t *tail) addLines(lines [][]byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range lines[max(0, len(lines)-t.max):] {
		t.addLocked(l)
	}
}

// addLocked is addBytes with mu held.
func (t *tail) addLocked(line []byte) {
	if len(t.lines) < t.max {
		t.lines = append(t.lines, append([]byte(nil), line...))
		return
	}
	t.lines[t.next] = append(t.lines[t.next][:0], line...)
	t.next = (t.next + 1) % t.max
}

// ordered is the lines, oldest first; the caller holds mu.
func (t *tail) ordered() [][]byte {
	return append(slices.Clone(t.lines[t.next:]), t.lines[:t.next]...)
}

// last is the last line, or "" when there is none.
func (t *tail) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.ordered()
	if len(l) == 0 {
		return ""
	}
	return string(l[len(l)-1])
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.Join(t.ordered(), []byte("\n")))
}

type teeSink struct {
	t    *tail
	next LineSink
}

func (s teeSink) Line(name string, line []byte) {
	s.t.addBytes(line)
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
	buf   []byte // reused by Lines
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
