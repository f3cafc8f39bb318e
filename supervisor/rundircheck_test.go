package supervisor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckRunDir(t *testing.T) {
	real := filepath.Join(t.TempDir(), "run")
	if err := PrepareRunDir(real); err != nil {
		t.Fatal(err)
	}
	if err := CheckRunDir(real); err != nil {
		t.Fatalf("our own 0700 dir refused: %v", err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	// up and the clients refuse a symlink alike, even to a dir of ours.
	for name, check := range map[string]func(string) error{"CheckRunDir": CheckRunDir, "PrepareRunDir": PrepareRunDir} {
		if err := check(link); err == nil || !strings.Contains(err.Error(), "is a symlink") {
			t.Errorf("%s(symlink) = %v, want a refusal", name, err)
		}
	}
	if err := CheckRunDir(filepath.Join(real, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing dir: %v, want os.ErrNotExist", err)
	}
	if os.Getuid() == 0 {
		other := filepath.Join(t.TempDir(), "other")
		if err := os.Mkdir(other, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := CheckRunDir(other); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Errorf("another user's dir: %v, want a refusal naming the owner", err)
		}
	} else {
		t.Log("not root: the other-owner case is covered by supervisor/e2e only where it can chown")
	}
}

// A pid file is obeyed only for a process that runs this executable.
func TestRunsSelf(t *testing.T) {
	ctx := context.Background()
	self, err := Identify(ctx, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := self.runsSelf(ctx); err != nil {
		t.Fatalf("this process: %v", err)
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	// Start returns once exec has succeeded: the process is sleep by now.
	other, err := Identify(ctx, cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.runsSelf(ctx); err == nil || !strings.Contains(err.Error(), "not posterctl") {
		t.Fatalf("sleep: %v, want a refusal", err)
	}
	dir := t.TempDir()
	if err := writePidFile(dir, other); err != nil {
		t.Fatal(err)
	}
	id, err := SignalFromPidFile(ctx, dir, 0)
	if err == nil || id.Pid != 0 || !strings.Contains(err.Error(), "not signalling it") {
		t.Fatalf("SignalFromPidFile(sleep) = %+v, %v; want a refusal", id, err)
	}
}
