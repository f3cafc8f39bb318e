package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Precheck says, without creating or taking anything, whether Start would
// be refused at once: a cluster already answers in the run dir, or a port a
// child needs is taken (naming its holder). The caller runs it before work
// that leaves traces, such as creating the store; Start checks both again.
func Precheck(ctx context.Context, cfg Config) error {
	// A live supervisor holds the run dir's lock, however slow its socket
	// is to answer; an existing lock file is only tried, never created.
	if _, err := os.Stat(filepath.Join(cfg.RunDir, lockName)); err == nil {
		l, err := lockRunDir(cfg.RunDir)
		if errors.Is(err, errLocked) {
			id, _ := ReadPidFile(cfg.RunDir)
			return &AlreadyRunningError{Pid: id.Pid}
		}
		l.release()
	}
	var ports []int
	for _, sp := range cfg.Specs {
		if sp.Port > 0 {
			ports = append(ports, sp.Port)
		}
		ports = append(ports, sp.Extra...)
	}
	if err := CheckPorts(ctx, ports); err != nil {
		return fmt.Errorf("check ports: %w", err)
	}
	return nil
}
