package sqlite

import (
	"testing"
	"time"
)

// TestCheckpointMode: the WAL is truncated every checkpointEvery, whatever
// its size; in between, only a WAL past journalSizeLimit is checkpointed,
// and then PASSIVE, which does not hold back writers.
func TestCheckpointMode(t *testing.T) {
	for _, c := range []struct {
		sinceTruncate time.Duration
		walSize       int64
		want          string
	}{
		{0, 0, ""},
		{checkpointEvery - time.Nanosecond, journalSizeLimit, ""},
		{0, journalSizeLimit + 1, checkpointPassive},
		{checkpointEvery - time.Nanosecond, 64 << 20, checkpointPassive},
		{checkpointEvery, 0, checkpointTruncate},
		{checkpointEvery, journalSizeLimit + 1, checkpointTruncate},
		{time.Duration(1<<63 - 1), 0, checkpointTruncate}, // never truncated yet
	} {
		if got := checkpointMode(c.sinceTruncate, c.walSize); got != c.want {
			t.Errorf("checkpointMode(%v, %d) = %q, want %q", c.sinceTruncate, c.walSize, got, c.want)
		}
	}
}
