package supervisor

import (
	"bufio"
	"bytes"
)

// LinesSink is a LineSink that also takes several lines at once, in order,
// and writes them with one system call: under load the LB writes a batch of
// access lines at a time, and a write per line would cost the supervisor
// more CPU per request than the LB's own log.
type LinesSink interface {
	LineSink
	Lines(name string, lines [][]byte)
}

// sinkLines hands lines to sink, together when it can take them so. The
// lines may point into a reader's buffer: no sink keeps them past the call.
func sinkLines(sink LineSink, name string, lines [][]byte) {
	if len(lines) == 0 {
		return
	}
	if ls, ok := sink.(LinesSink); ok {
		ls.Lines(name, lines)
		return
	}
	for _, l := range lines {
		sink.Line(name, l)
	}
}

// lineBuffered reports whether a whole line is already in br, so that
// reading it does not move (and so spoil) the lines read before it.
func lineBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

// Lines implements LinesSink.
func (s teeSink) Lines(name string, lines [][]byte) {
	s.t.addLines(lines)
	sinkLines(s.next, name, lines)
}

// Lines implements LinesSink: one write for the lot.
func (s *PrefixSink) Lines(name string, lines [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The prefix is made once, at the buffer's end, and copied before
	// each line.
	buf := s.buf[:0]
	if s.color {
		buf = append(buf, s.hue[name]...)
	}
	buf = append(buf, name...)
	for range s.width - len(name) {
		buf = append(buf, ' ')
	}
	if s.color {
		buf = append(buf, " |\x1b[0m "...)
	} else {
		buf = append(buf, " | "...)
	}
	n := len(buf)
	for _, l := range lines {
		buf = append(append(append(buf, buf[:n]...), l...), '\n')
	}
	_, _ = s.w.Write(buf[n:])
	s.buf = buf[:0]
}

// Lines implements LinesSink: one write for the lot. A batch that cannot be
// written is dropped, as a line is.
func (s *FileSink) Lines(name string, lines [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf := s.buf[:0]
	for _, l := range lines {
		buf = append(append(buf, l...), '\n')
	}
	_, _ = s.logger(name).Write(buf)
	s.buf = buf[:0]
}
