package supervisor

import (
	"path/filepath"
	"slices"
)

// IncludeRotated makes Last read the rotated files too: the earlier runs,
// and this run's rotations by size. Without it Last shows the current run's
// files only; every `up` starts them afresh.
func (t *LogTail) IncludeRotated() { t.rotated = true }

// rotatedLines returns up to n last lines of name's rotated files, oldest
// first. lumberjack's names carry the rotation time, so they sort in
// order.
func (t *LogTail) rotatedLines(name string, n int) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(t.dir, name+"-*.log"))
	if err != nil {
		return nil, err
	}
	var mine []string
	for _, p := range paths {
		if m := rotatedLog.FindStringSubmatch(filepath.Base(p)); m != nil && m[1] == name {
			mine = append(mine, p)
		}
	}
	slices.Sort(mine)
	var out []string
	for i := len(mine) - 1; i >= 0 && len(out) < n; i-- {
		lines, _, err := lastCompleteLines(mine[i], n-len(out))
		if err != nil {
			return nil, err
		}
		out = append(lines, out...)
	}
	return out, nil
}
