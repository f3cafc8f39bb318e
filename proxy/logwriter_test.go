package proxy

import (
	"bytes"
	"errors"
	"sync"
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
