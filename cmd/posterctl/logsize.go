package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/posterctl/posterctl/supervisor"
)

// supervisorLogName is the detached supervisor's own log in <run-dir>/logs.
const supervisorLogName = "supervisor"

// parseSize reads a size in bytes: a plain number, or one with a unit
// (KiB, MiB, GiB; KB, MB, GB in powers of 1000; K, M, G as KiB, MiB, GiB).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
	}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(strings.ToUpper(t), strings.ToUpper(u.suffix)) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q: want a positive number of bytes, or one with a unit such as 50MiB", s)
	}
	return n * mult, nil
}

// logRotation is the rotation of a detached cluster's logs; the flags were
// checked by validateLogFlags.
func (cfg *upConfig) logRotation() supervisor.LogRotation {
	n, _ := parseSize(cfg.LogMaxSize)
	return supervisor.LogRotation{MaxBytes: n, MaxFiles: cfg.LogMaxFiles}
}

func (cfg *upConfig) validateLogFlags() error {
	if _, err := parseSize(cfg.LogMaxSize); err != nil {
		return fmt.Errorf("invalid --log-max-size: %w", err)
	}
	if cfg.LogMaxFiles < 1 {
		return fmt.Errorf("invalid --log-max-files %d: want 1 or more", cfg.LogMaxFiles)
	}
	return nil
}
