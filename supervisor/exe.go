package supervisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shirou/gopsutil/v3/process"
)

// runsSelf checks that the process named by id runs the executable this
// process runs. Pid, create time and name come from a file that someone
// else may have written; the executable cannot be forged by them, so a pid
// file describing another program (a `sleep` of the user's, say) is never
// obeyed.
func (id Identity) runsSelf(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot tell which program we run: %w", err)
	}
	selfInfo, err := os.Stat(self)
	if err != nil {
		return fmt.Errorf("cannot tell which program we run: %w", err)
	}
	// Linux names the very file the process was started from; it matches
	// even when the path was since renamed.
	if fi, err := os.Stat(filepath.Join("/proc", strconv.Itoa(id.Pid), "exe")); err == nil && os.SameFile(fi, selfInfo) {
		return nil
	}
	p, err := process.NewProcessWithContext(ctx, int32(id.Pid))
	if err != nil {
		return fmt.Errorf("pid %d: %w", id.Pid, err)
	}
	exe, err := p.ExeWithContext(ctx)
	if err != nil {
		return fmt.Errorf("cannot tell which program pid %d runs: %w", id.Pid, err)
	}
	// A binary rebuilt in place since the supervisor started: same path,
	// the old file deleted.
	exe = strings.TrimSuffix(exe, " (deleted)")
	if resolved, err := filepath.EvalSymlinks(self); err == nil {
		self = resolved
	}
	if exe != self {
		return fmt.Errorf("pid %d runs %s, not posterctl (%s)", id.Pid, exe, self)
	}
	return nil
}
