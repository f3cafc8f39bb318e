package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestLogWriter(t *testing.T) {
	var out lockedBuffer
	lw := NewLogWriter(&out, 10*time.Millisecond)
	lw.Write([]byte("one\n"))
	lw.Write([]byte("two\n"))
	// Lines arrive without an explicit flush, in order.
	clitest.Eventually(t, 5*time.Second, func() error {
		if out.String() != "one\ntwo\n" {
			return errors.New(out.String())
		}
		return nil
	})
	lw.Write([]byte("three\n"))
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "one\ntwo\nthree\n" {
		t.Fatalf("after Close: %q", out.String())
	}
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
}

// slowBuffer takes a while over each write, so that lines keep coming while
// one is under way.
type slowBuffer struct {
	lockedBuffer
	writes atomic.Int64
}

func (s *slowBuffer) Write(p []byte) (int, error) {
	s.writes.Add(1)
	deadline := time.Now().Add(200 * time.Microsecond)
	for time.Now().Before(deadline) { // busy, not asleep: a write system call
	}
	return s.lockedBuffer.Write(p)
}

// TestLogWriterConcurrent: lines written at once by many goroutines, past the
// buffer's size many times over while writes are under way, all come out
// whole, each goroutine's in its order, none lost once Close returns.
func TestLogWriterConcurrent(t *testing.T) {
	var out slowBuffer
	lw := NewLogWriter(&out, time.Millisecond)
	const writers, lines = 8, 5000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pad := strings.Repeat("x", 100)
			for i := range lines {
				lw.Write(fmt.Appendf(nil, "%d %d %s\n", w, i, pad))
			}
		}()
	}
	wg.Wait()
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers)
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		var w, i int
		var pad string
		if n, err := fmt.Sscanf(l, "%d %d %s", &w, &i, &pad); n != 3 || err != nil || len(pad) != 100 {
			t.Fatalf("broken line %q", l)
		}
		if i != next[w] {
			t.Fatalf("writer %d: line %d after %d", w, i, next[w]-1)
		}
		next[w]++
	}
	for w, n := range next {
		if n != lines {
			t.Fatalf("writer %d: %d lines of %d", w, n, lines)
		}
	}
	if out.writes.Load() < 2 {
		t.Fatalf("%d writes: the size limit never wrote", out.writes.Load())
	}
}

// TestLogWriterWritesWhenFull: with no flush due, a buffer past its size is
// written out by the line that filled it, in whole lines, and nothing
// before that.
func TestLogWriterWritesWhenFull(t *testing.T) {
	var out slowBuffer
	lw := NewLogWriter(&out, time.Hour)
	defer lw.Close()
	line := []byte(strings.Repeat("x", 99) + "\n")
	n := 0
	for ; n*len(line) < logWriterSize-len(line); n++ {
		lw.Write(line)
	}
	if out.writes.Load() != 0 {
		t.Fatalf("%d writes before the buffer was full", out.writes.Load())
	}
	for ; out.writes.Load() == 0 && n*len(line) < 2*logWriterSize; n++ {
		lw.Write(line)
	}
	got := out.String()
	if out.writes.Load() != 1 || len(got) < logWriterSize || len(got)%len(line) != 0 || strings.Count(got, "\n") != len(got)/len(line) {
		t.Fatalf("%d writes, %d bytes, after %d lines of %d bytes", out.writes.Load(), len(got), n, len(line))
	}
}
