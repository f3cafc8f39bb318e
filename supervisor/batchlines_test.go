package supervisor

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// countingWriter counts the writes it is given.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

func TestSinkBatches(t *testing.T) {
	lines := [][]byte{[]byte("one"), []byte("two"), []byte("three")}
	for _, color := range []bool{false, true} {
		t.Run(fmt.Sprintf("PrefixColour=%v", color), func(t *testing.T) {
			var one, many countingWriter
			a := NewPrefixSink(&one, color, []string{"lb", "backend-1"})
			b := NewPrefixSink(&many, color, []string{"lb", "backend-1"})
			for _, l := range lines {
				a.Line("lb", l)
			}
			b.Lines("lb", lines)
			if one.String() != many.String() || many.writes != 1 {
				t.Fatalf("line by line %q, batched %q in %d writes", one.String(), many.String(), many.writes)
			}
		})
	}
	t.Run("File", func(t *testing.T) {
		s, err := NewFileSink(filepath.Join(t.TempDir(), "logs"), LogRotation{MaxBytes: 1 << 20, MaxFiles: 2})
		if err != nil {
			t.Fatal(err)
		}
		s.Line("lb", []byte("zero"))
		s.Lines("lb", lines)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(s.LogPath("lb")); err != nil || string(b) != "zero\none\ntwo\nthree\n" {
			t.Fatalf("log file %q %v", b, err)
		}
	})
	t.Run("TailRing", func(t *testing.T) {
		var w countingWriter
		tl := newTail(3)
		tee := teeSink{tl, NewPrefixSink(&w, false, []string{"x"})}
		for i := range 10 {
			tee.Lines("x", [][]byte{[]byte(fmt.Sprint(i)), []byte(fmt.Sprint(i, "b"))})
		}
		if tl.String() != "8b\n9\n9b" || tl.last() != "9b" || w.writes != 10 {
			t.Fatalf("tail %q last %q, %d writes", tl.String(), tl.last(), w.writes)
		}
		// A batch longer than the ring leaves its own last lines, in
		// order; a short one after it keeps the long one's last.
		var long [][]byte
		for i := range 7 {
			long = append(long, []byte(fmt.Sprint("L", i)))
		}
		tee.Lines("x", long)
		if tl.String() != "L4\nL5\nL6" {
			t.Fatalf("after a long batch, tail %q", tl.String())
		}
		tee.Lines("x", [][]byte{[]byte("s")})
		if tl.String() != "L5\nL6\ns" || tl.last() != "s" {
			t.Fatalf("after a short batch, tail %q", tl.String())
		}
	})
}

// TestReaderBatchesLines feeds the reader loop's batching through a pipe:
// every line arrives once, whole and in order, however the writes split them,
// and lines that arrived together leave together.
func TestReaderBatchesLines(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	go func() {
		defer w.Close()
		bw := bufio.NewWriterSize(w, 4096) // writes that cut lines anywhere
		for i := range 5000 {
			fmt.Fprintf(bw, "line %d %s\n", i, strings.Repeat("x", i%300))
		}
		bw.Flush()
	}()
	for i := range 5000 {
		fmt.Fprintf(&want, "line %d %s\n", i, strings.Repeat("x", i%300))
	}
	var got countingWriter
	p := &Process{spec: Spec{Name: "lb"}, readerDone: make(chan struct{})}
	p.read(r, teeSink{newTail(5), NewPrefixSink(&got, false, []string{"lb"})})
	<-p.readerDone
	if g := strings.ReplaceAll(got.String(), "lb | ", ""); g != want.String() {
		t.Fatalf("lines differ: got %d bytes, want %d", len(g), want.Len())
	}
	if got.writes >= 5000 {
		t.Fatalf("%d writes for 5000 lines: not batched", got.writes)
	}
}
