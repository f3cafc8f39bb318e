package proxy

import (
	"io"
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
type LogWriter struct {
	mu  sync.Mutex
	buf []byte // lines not yet handed to a write

	// wmu: one write at a time, in the order the buffers were taken. It is
	// taken while holding mu, never the other way round.
	wmu   sync.Mutex
	w     io.Writer
	spare []byte // under wmu: the buffer the last write gave back

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// logWriterSize is the size past which a line's writer writes the buffer out
// itself rather than leave it to the flusher.
const logWriterSize = 64 << 10

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

// lockBuf takes mu and returns the buffer, for a caller that appends a
// whole line to it in place and hands it back to appended.
func (l *LogWriter) lockBuf() []byte {
	l.mu.Lock()
	return l.buf
}

// appended ends an append under mu: it releases mu, once the buffer is
// written out if it is full.
func (l *LogWriter) appended() error {
	if len(l.buf) < logWriterSize {
		l.mu.Unlock()
		return nil
	}
	// Full: write it out, unless a write is under way, which has the
	// flusher's or another line's buffer; this one waits its turn, growing
	// meanwhile, up to four times the size, past which lines wait.
	if len(l.buf) < 4*logWriterSize && !l.wmu.TryLock() {
		l.mu.Unlock()
		return nil
	}
	if len(l.buf) >= 4*logWriterSize {
		l.wmu.Lock()
	}
	return l.writeOut()
}

// writeOut is called with mu and wmu held; it swaps the buffer, releases
// mu, writes, and releases wmu. Taking wmu before releasing mu keeps the
// buffers' writes in the order their lines came.
func (l *LogWriter) writeOut() error {
	full := l.buf
	l.buf, l.spare = l.spare[:0], nil
	if l.buf == nil {
		l.buf = make([]byte, 0, logWriterSize)
	}
	l.mu.Unlock()
	defer l.wmu.Unlock()
	var err error
	if len(full) > 0 {
		_, err = l.w.Write(full)
	}
	if cap(full) <= 4*logWriterSize {
		l.spare = full[:0]
	}
	return err
}

// Flush writes what is buffered.
func (l *LogWriter) Flush() error {
	l.mu.Lock()
	if len(l.buf) == 0 {
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
