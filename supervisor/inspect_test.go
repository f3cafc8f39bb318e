package supervisor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
)

func helperCmd(t *testing.T, mode string) (*exec.Cmd, func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reaped := false
	reap := func() {
		if !reaped {
			reaped = true
			stdin.Close()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		reap()
	})
	return cmd, func() { stdin.Close() }
}

// A zombie still answers kill(pid, 0), yet it has exited.
func TestIdentityZombieIsDead(t *testing.T) {
	cmd, closeStdin := helperCmd(t, "block")
	id, err := Identify(context.Background(), cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if !id.Alive(context.Background()) {
		t.Fatal("live process reported dead")
	}
	closeStdin() // it exits; we do not reap it, so it stays a zombie
	clitest.Eventually(t, 5*time.Second, func() error {
		if id.Alive(context.Background()) {
			return errors.New("exited child still reported alive")
		}
		return nil
	})
	if err := syscall.Kill(cmd.Process.Pid, 0); err != nil {
		t.Fatalf("expected an unreaped zombie, kill(pid, 0): %v", err)
	}
}

// The same pid with another create time is another process.
func TestIdentityCreateTime(t *testing.T) {
	cmd, _ := helperCmd(t, "block")
	id, err := Identify(context.Background(), cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	other := id
	other.CreateTime -= 1000
	if other.Alive(context.Background()) {
		t.Fatal("pid with a different create time reported alive")
	}
	renamed := id
	renamed.Name = "not-" + id.Name
	if renamed.Alive(context.Background()) {
		t.Fatal("pid with a different name reported alive")
	}
	if (Identity{}).Alive(context.Background()) {
		t.Fatal("zero identity reported alive")
	}
}

// CPU % is the share of the last interval, not an average over the
// process's life: a process that just started spinning shows it at once.
func TestUsageSamplerDelta(t *testing.T) {
	cmd, _ := helperCmd(t, "spin")
	id, err := Identify(context.Background(), cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	s := usageSampler{id: id}
	first, err := s.sample(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if first.CPUPercent != 0 || first.RSS == 0 {
		t.Fatalf("first sample %+v, want 0 %% CPU (no interval yet) and some RSS", first)
	}
	clitest.Eventually(t, 10*time.Second, func() error {
		u, err := s.sample(context.Background(), time.Now())
		if err != nil {
			return err
		}
		if u.CPUPercent < 20 {
			return errors.New("spinning process below 20 % CPU")
		}
		return nil
	})
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if _, err := s.sample(context.Background(), time.Now()); !errors.Is(err, errNotSameProcess) {
		t.Fatalf("sample of a dead process: %v", err)
	}
}

func TestCPUPercent(t *testing.T) {
	t0 := time.Unix(1000, 0)
	// 200 s of CPU over a long life, then half a core for the last second:
	// the lifetime average would say something else entirely.
	if got := cpuPercent(200, t0, 200.5, t0.Add(time.Second)); got != 50 {
		t.Fatalf("half a core for 1 s: %v %%, want 50", got)
	}
	if got := cpuPercent(0, time.Time{}, 200, t0); got != 0 {
		t.Fatalf("without a previous sample: %v, want 0", got)
	}
	if got := cpuPercent(1, t0, 3, t0.Add(time.Second)); got != 200 {
		t.Fatalf("two cores: %v, want 200", got)
	}
	if got := cpuPercent(1, t0, 1, t0); got != 0 {
		t.Fatalf("zero interval: %v, want 0", got)
	}
}

// Signal reaches the process its identity names, and no other: not one
// that took its pid (another create time), nor anything once it is gone.
func TestIdentitySignal(t *testing.T) {
	cmd, _ := helperCmd(t, "block")
	id, err := Identify(context.Background(), cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	stale := id
	stale.CreateTime-- // the same pid, another process
	if err := stale.Signal(context.Background(), syscall.SIGKILL); err != nil {
		t.Fatalf("signalling a stale identity: %v", err)
	}
	if !id.Alive(context.Background()) {
		t.Fatal("a stale identity's signal reached the process that has its pid now")
	}
	if err := id.Signal(context.Background(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || cmd.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("after Signal(SIGKILL): %v", err)
	}
	if err := id.Signal(context.Background(), syscall.SIGKILL); err != nil {
		t.Fatalf("signalling a process that is gone: %v", err)
	}
}
