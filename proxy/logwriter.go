package proxy

import (
	"io"
	"slices"
	"sync"
	"time"
)

// LogWriter batches log output: one access line per request would otherwise
// cost one write system call per request, a tenth of the balancer's CPU.
// Lines wait in memory for at most the flush interval; Close writes the rest.
//
// Every request goroutine appends under mu, so mu is held only to copy a
// line: the write system call happens under wmu, after the full buffer was
// swapped for the spare one. A write under mu would park every goroutine
// that logs meanwhile, and each park and wake-up costs more than the line.
//
// An AccessLog's lines are not even formatted on the request's path: the
// request holds its line (AccessLog.hold), which is formatted when the
// buffer is written out, a batch at a time, outside mu (see AccessLog).
// A LogWriter formats the lines of one AccessLog, the one made on it.
type LogWriter struct {
	mu   sync.Mutex
	buf  []byte    // lines not yet handed to a write
	held heldLines // access lines not yet formatted, which go into buf

	// wmu: one write at a time, in the order the buffers were taken. It is
	// taken while holding mu, never the other way round.
	wmu       sync.Mutex
	w         io.Writer
	spare     []byte    // under wmu: the buffer the last write gave back
	spareHeld heldLines // under wmu: the held lines the last write gave back
	out       []byte    // under wmu: where held lines are formatted

	access *AccessLog // what formats the held lines; set by newAccessLog

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// heldLines are access lines held for formatting, in order.
type heldLines struct {
	lines []heldLine
	text  []byte // the lines' methods and paths, copied from the requests
	size  int    // about what the lines take formatted
}

// heldLine is an access line held for formatting: the exchange whose line
// it is, which tells most of it, and what the exchange's request no longer
// keeps once the connection's next request reuses the server's buffers:
// the method and the path, in heldLines.text from textAt on, and the
// remote field. The status and the error are copied too, so that nothing
// done to the exchange after its line was held can change the line.
type heldLine struct {
	x                  *exchange
	remote             []byte
	errMsg             string
	at                 int // where in the buffer's text the line goes
	textAt             int
	methodLen, pathLen int32
	status             int32
}

// heldLineSize is about what a held line takes formatted besides its
// method, path and id (fields, keys, two addresses, the time), a little
// more rather than less: the batch's buffer is grown by it ahead.
const heldLineSize = 320

// logWriterSize is the size past which a line's writer writes the buffer out
// itself rather than leave it to the flusher. Each write-out costs more
// than its system call shows: run beside a 64 KiB build, the balancer with
// its log on measured 0.7 and 0.9 µs a request dearer with 16 KiB batches,
// and 0.3 to 0.75 cheaper with 256 KiB ones, in four runs (the same runs'
// log-off builds, alike but for where their code lies, differed by up to
// 0.8). 1 MiB was no cheaper. Lines still wait no longer than the flush
// interval.
const logWriterSize = 256 << 10

// NewLogWriter starts the flusher; the caller must Close it.
func NewLogWriter(w io.Writer, every time.Duration) *LogWriter {
	l := &LogWriter{w: w, buf: make([]byte, 0, logWriterSize), stop: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				_ = l.Flush()
			}
		}
	}()
	return l
}

// Write implements io.Writer; each zerolog event is one call, so lines stay
// whole and in order.
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf = append(l.buf, p...)
	if err := l.appended(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// appended ends an append under mu: it releases mu, once the buffer is
// written out if it is full.
func (l *LogWriter) appended() error {
	n := len(l.buf) + l.held.size
	if n < logWriterSize {
		l.mu.Unlock()
		return nil
	}
	// Full: write it out, unless a write is under way, which has the
	// flusher's or another line's buffer; this one waits its turn, growing
	// meanwhile, up to four times the size, past which lines wait.
	if n < 4*logWriterSize && !l.wmu.TryLock() {
		l.mu.Unlock()
		return nil
	}
	if n >= 4*logWriterSize {
		l.wmu.Lock()
	}
	return l.writeOut()
}

// writeOut is called with mu and wmu held; it swaps the buffer and the held
// lines, releases mu, formats the held lines into the buffer's text,
// writes, and releases wmu. Taking wmu before releasing mu keeps the
// buffers' writes in the order their lines came.
func (l *LogWriter) writeOut() error {
	full, held := l.buf, l.held
	l.buf, l.spare = l.spare[:0], nil
	if l.buf == nil {
		l.buf = make([]byte, 0, logWriterSize)
	}
	l.held, l.spareHeld = l.spareHeld, heldLines{}
	l.mu.Unlock()
	defer l.wmu.Unlock()
	out := full
	if len(held.lines) > 0 {
		out = held.format(l.access, l.out[:0], full)
	}
	var err error
	if len(out) > 0 {
		_, err = l.w.Write(out)
	}
	if len(held.lines) > 0 && cap(out) <= 4*logWriterSize {
		l.out = out[:0]
	}
	if cap(full) <= 4*logWriterSize {
		l.spare = full[:0]
	}
	clear(held.lines) // the exchanges may go
	l.spareHeld = heldLines{lines: held.lines[:0], text: held.text[:0]}
	return err
}

// format appends text with the held lines formatted by a at their places.
func (h *heldLines) format(a *AccessLog, dst, text []byte) []byte {
	dst = slices.Grow(dst, len(text)+h.size)
	prev := 0
	for i := range h.lines {
		hl := &h.lines[i]
		if hl.at > prev { // lines of other kinds came in between
			dst = append(dst, text[prev:hl.at]...)
			prev = hl.at
		}
		t := h.text[hl.textAt:]
		x := hl.x
		line := x.line(t[:hl.methodLen], t[hl.methodLen:hl.methodLen+hl.pathLen], int(hl.status), hl.errMsg, x.end.Sub(x.start))
		dst = a.appendHeld(dst, x.end, &line, hl.remote)
	}
	return append(dst, text[prev:]...)
}

// Flush writes what is buffered.
func (l *LogWriter) Flush() error {
	l.mu.Lock()
	if len(l.buf) == 0 && len(l.held.lines) == 0 {
		l.mu.Unlock()
		return nil
	}
	l.wmu.Lock()
	return l.writeOut()
}

// Close stops the flusher and writes what is left; safe to call twice.
func (l *LogWriter) Close() error {
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
	})
	return l.Flush()
}
