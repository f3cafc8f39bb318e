package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
)

func rotatedFiles(t *testing.T, dir, name string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, name+"-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// A log rotates once it would pass the configured size, and only the
// configured number of rotated files is kept.
func TestFileSinkRotates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	s, err := NewFileSink(dir, LogRotation{MaxBytes: 1 << 20, MaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	line := []byte(strings.Repeat("x", 1000))
	for range 5 * 1100 { // about 5.5 MiB: five rotations
		s.Line("backend-1", line)
	}
	// lumberjack removes the oldest files in its own goroutine.
	clitest.Eventually(t, 10*time.Second, func() error {
		if got := rotatedFiles(t, dir, "backend-1"); len(got) != 2 {
			return fmt.Errorf("%d rotated files, want 2: %v", len(got), got)
		}
		return nil
	})
	for _, p := range append(rotatedFiles(t, dir, "backend-1"), s.LogPath("backend-1")) {
		fi, err := os.Stat(p)
		if err != nil || fi.Size() > 1<<20 || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v", p, fi, err)
		}
	}
}

// Each run starts new files: the last run's log is kept as one rotated
// file, which LogTail shows only when asked for rotated files. Reopen
// after the file was moved away starts a new file at the path.
func TestFileSinkFreshRunAndReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeLog(t, dir, "backend-1", `{"time":"2026-01-01T00:00:01.000Z","message":"last run"}`+"\n", false)
	writeLog(t, dir, "supervisor", "the caller's\n", false)
	s, err := NewFileSink(dir, LogRotation{MaxBytes: 1 << 20, MaxFiles: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := rotatedFiles(t, dir, "backend-1"); len(got) != 1 {
		t.Fatalf("last run's log not kept as one rotated file: %v", got)
	}
	if got := rotatedFiles(t, dir, "supervisor"); len(got) != 0 {
		t.Fatalf("the supervisor's log is the caller's to rotate: %v", got)
	}
	s.Line("backend-1", []byte(`{"time":"2026-01-02T00:00:01.000Z","message":"this run"}`))
	tl, err := OpenLogTail(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tl.Last(10)
	if err != nil {
		t.Fatal(err)
	}
	if txt := texts(got); strings.Contains(txt, "last run") || !strings.Contains(txt, "this run") {
		t.Fatalf("without rotated files:\n%s", txt)
	}
	tl, _ = OpenLogTail(dir, "backend-1")
	tl.IncludeRotated()
	got, err = tl.Last(10)
	if err != nil {
		t.Fatal(err)
	}
	if txt := texts(got); !strings.Contains(txt, "last run") || strings.Index(txt, "last run") > strings.Index(txt, "this run") {
		t.Fatalf("with rotated files, in order:\n%s", txt)
	}

	moved := filepath.Join(dir, "moved-away")
	if err := os.Rename(s.LogPath("backend-1"), moved); err != nil {
		t.Fatal(err)
	}
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	s.Line("backend-1", []byte("after reopen"))
	b, err := os.ReadFile(s.LogPath("backend-1"))
	if err != nil || string(b) != "after reopen\n" {
		t.Fatalf("new file after reopen: %q %v", b, err)
	}
	if b, _ := os.ReadFile(moved); strings.Contains(string(b), "after reopen") {
		t.Fatal("a line went to the moved file after reopen")
	}
}
