package supervisor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// supervisorLog is the detached supervisor's own log, beside the children's.
const supervisorLog = "supervisor"

// LogLine is one line of a child's log file.
type LogLine struct {
	Name string
	Text string
	Time time.Time // from the line's JSON "time"; zero when it has none
}

// LogTail reads the child logs of a detached cluster (<run-dir>/logs): the
// last lines of every child merged in time order, then, polled, the lines
// written since. It owns no goroutine; the caller polls.
type LogTail struct {
	dir     string
	only    string // one name, or "" for every child
	rotated bool   // Last reads rotated files too (earlier runs, rotations)
	offsets map[string]int64
	partial map[string][]byte // a last line not yet ended by a newline
}

// OpenLogTail checks that dir has logs, and that name (if given) is one of
// them; "supervisor" names the supervisor's own log.
func OpenLogTail(dir, name string) (*LogTail, error) {
	t := &LogTail{dir: dir, only: name, offsets: map[string]int64{}, partial: map[string][]byte{}}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no logs in %s: %w", dir, err)
	}
	if name != "" {
		names, err := t.names(true)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(names, name) {
			return nil, fmt.Errorf("no log for %q in %s (known: %s)", name, dir, strings.Join(names, ", "))
		}
	}
	return t, nil
}

// names lists the log files' names; the supervisor's own only if all.
func (t *LogTail) names(all bool) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(t.dir, "*.log"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range paths {
		n := strings.TrimSuffix(filepath.Base(p), ".log")
		if rotatedLog.MatchString(filepath.Base(p)) {
			continue
		}
		if n != supervisorLog || all {
			out = append(out, n)
		}
	}
	return out, nil
}

func (t *LogTail) selected() ([]string, error) {
	if t.only != "" {
		return []string{t.only}, nil
	}
	return t.names(false)
}

// Last returns up to n last lines over the selected logs, oldest first,
// and makes Poll continue from the end of each file.
func (t *LogTail) Last(n int) ([]LogLine, error) {
	names, err := t.selected()
	if err != nil {
		return nil, err
	}
	var all []LogLine
	for _, name := range names {
		lines, end, err := lastCompleteLines(filepath.Join(t.dir, name+".log"), n)
		if err != nil {
			return nil, err
		}
		t.offsets[name] = end
		if t.rotated && len(lines) < n {
			older, err := t.rotatedLines(name, n-len(lines))
			if err != nil {
				return nil, err
			}
			lines = append(older, lines...)
		}
		all = append(all, stamp(name, lines)...)
	}
	sortByTime(all)
	return all[max(0, len(all)-n):], nil
}

// Poll returns the complete lines written since the last call, merged in
// time order. A log that shrank (rotated or truncated) is read from its
// start; a child that appeared meanwhile (scale) is read from its start.
func (t *LogTail) Poll() ([]LogLine, error) {
	names, err := t.selected()
	if err != nil {
		return nil, err
	}
	var all []LogLine
	for _, name := range names {
		lines, err := t.readNew(name)
		if err != nil {
			return nil, err
		}
		all = append(all, stamp(name, lines)...)
	}
	sortByTime(all)
	return all, nil
}

func (t *LogTail) readNew(name string) ([]string, error) {
	f, err := os.Open(filepath.Join(t.dir, name+".log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := t.offsets[name]
	if fi.Size() < off {
		off, t.partial[name] = 0, nil
	}
	if fi.Size() == off {
		return nil, nil
	}
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	t.offsets[name] = fi.Size()
	b = append(t.partial[name], b...)
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		t.partial[name] = b
		return nil, nil
	}
	t.partial[name] = slices.Clone(b[end+1:])
	return strings.Split(string(b[:end]), "\n"), nil
}

// lastCompleteLines reads up to n complete last lines of path from its end, in
// chunks, so a large log costs only what is shown.
func lastCompleteLines(path string, n int) ([]string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := fi.Size()
	// Only complete lines: a line being written is left to Poll.
	var buf []byte
	pos := size
	for pos > 0 && bytes.Count(buf, []byte{'\n'}) <= n {
		chunk := min(pos, 64<<10)
		pos -= chunk
		b := make([]byte, chunk)
		if _, err := f.ReadAt(b, pos); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		buf = append(b, buf...)
	}
	end := bytes.LastIndexByte(buf, '\n')
	if end < 0 {
		return nil, pos, nil
	}
	complete := pos + int64(end) + 1
	lines := strings.Split(string(buf[:end]), "\n")
	if pos > 0 {
		lines = lines[1:] // the first may be cut
	}
	return lines[max(0, len(lines)-n):], complete, nil
}

// stamp names the lines and reads their times; a line without one (a
// panic, say) takes the time of the line before it, so it stays in place.
func stamp(name string, lines []string) []LogLine {
	out := make([]LogLine, 0, len(lines))
	var last time.Time
	for _, l := range lines {
		var v struct {
			Time time.Time `json:"time"`
		}
		if strings.HasPrefix(l, "{") && json.Unmarshal([]byte(l), &v) == nil && !v.Time.IsZero() {
			last = v.Time
		}
		out = append(out, LogLine{Name: name, Text: l, Time: last})
	}
	return out
}

// sortByTime merges the logs; lines of one log keep their order.
func sortByTime(lines []LogLine) {
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].Time.Before(lines[j].Time) })
}
