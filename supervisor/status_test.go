package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/rs/zerolog"
)

// A crashed child waiting for its restart shows backoff, its last exit and
// when the next try comes (the table of such a row: cmd/posterctl).
func TestBackoffInStatus(t *testing.T) {
	pol := DefaultRestartPolicy()
	pol.MinBackoff, pol.MaxBackoff = time.Hour, time.Hour
	s, err := New(Config{
		Specs:        []Spec{fake("b1", "exit1", clitest.FreePort(t), 0)},
		RunDir:       runDir(t),
		Restart:      pol,
		ReadyTimeout: 5 * time.Second,
		Sink:         &lines{},
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan error, 1)
	go func() { started <- s.Start(ctx) }()
	var c ChildStatus
	clitest.Eventually(t, 10*time.Second, func() error {
		st := s.Status(context.Background())
		if len(st.Children) != 1 || st.Children[0].State != Backoff {
			return fmt.Errorf("status %+v", st.Children)
		}
		c = st.Children[0]
		return nil
	})
	if c.NextRetry == nil || time.Until(*c.NextRetry) < 59*time.Minute || c.LastExit != "exit 1" || c.Restarts != 1 || c.Pid != 0 {
		t.Fatalf("backoff status %+v", c)
	}
	cancel()
	select {
	case err := <-started:
		if err == nil || !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted start: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return after its context was cancelled")
	}
	if c := childStatus(t, s, "b1"); c.State != Exited {
		t.Fatalf("after an interrupted start: %s", c.State)
	}
}

func TestSinks(t *testing.T) {
	t.Run("Prefix", func(t *testing.T) {
		var buf bytes.Buffer
		s := NewPrefixSink(&buf, false, []string{"lb", "backend-1"})
		s.Line("lb", []byte("hello"))
		if got := buf.String(); got != "lb        | hello\n" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("PrefixColour", func(t *testing.T) {
		var buf bytes.Buffer
		NewPrefixSink(&buf, true, []string{"lb"}).Line("lb", []byte("x"))
		if !strings.HasPrefix(buf.String(), "\x1b[") || !strings.Contains(buf.String(), "\x1b[0m x\n") {
			t.Fatalf("no colour: %q", buf.String())
		}
	})
	t.Run("File", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "logs")
		s, err := NewFileSink(dir, LogRotation{MaxBytes: 1 << 20, MaxFiles: 2})
		if err != nil {
			t.Fatal(err)
		}
		buf := []byte("one\ntwo")
		s.Line("lb", buf[:3])
		if string(buf) != "one\ntwo" {
			t.Fatalf("the sink wrote into the caller's buffer: %q", buf)
		}
		s.Line("lb", []byte("three"))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(s.LogPath("lb"))
		if err != nil || string(b) != "one\nthree\n" {
			t.Fatalf("log file %q %v", b, err)
		}
	})
	t.Run("Tail", func(t *testing.T) {
		tl := newTail(2)
		for _, l := range []string{"a", "b", "c"} {
			tl.add(l)
		}
		if tl.String() != "b\nc" {
			t.Fatalf("tail %q", tl.String())
		}
	})
}

func TestRunDirRefusedWhenOpen(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := PrepareRunDir(dir); err == nil || !strings.Contains(err.Error(), "0700") {
		t.Fatalf("open run dir accepted: %v", err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o755 {
		t.Fatalf("refused run dir was changed to %v", fi.Mode().Perm())
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if err := PrepareRunDir(file); err == nil {
		t.Fatal("a regular file accepted as run dir")
	}
}
