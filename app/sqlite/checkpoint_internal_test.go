package sqlite

import (
	"path/filepath"
	"testing"
	"time"
)

// TestCheckpointMode: the WAL is truncated every checkpointEvery, whatever
// its size, and as soon as it is past truncateAbove; in between, only a WAL
// past checkpointAbove is checkpointed, and then PASSIVE, which does not
// hold back writers.
func TestCheckpointMode(t *testing.T) {
	for _, c := range []struct {
		sinceTruncate time.Duration
		walSize       int64
		want          string
	}{
		{0, 0, ""},
		{checkpointEvery - time.Nanosecond, checkpointAbove, ""},
		{0, checkpointAbove + 1, checkpointPassive},
		{checkpointEvery - time.Nanosecond, truncateAbove, checkpointPassive},
		{0, truncateAbove + 1, checkpointTruncate},
		{checkpointEvery, 0, checkpointTruncate},
		{checkpointEvery, checkpointAbove + 1, checkpointTruncate},
		{time.Duration(1<<63 - 1), 0, checkpointTruncate}, // never truncated yet
	} {
		if got := checkpointMode(c.sinceTruncate, c.walSize); got != c.want {
			t.Errorf("checkpointMode(%v, %d) = %q, want %q", c.sinceTruncate, c.walSize, got, c.want)
		}
	}
}

// TestWriteConnNeverCheckpoints: SQLite's automatic checkpoint is off on
// the write connection, so no COMMIT waits for a checkpoint's sync; the
// watch goroutine's checkpoints are the only ones.
func TestWriteConnNeverCheckpoints(t *testing.T) {
	db := NewDB(filepath.Join(t.TempDir(), "poster.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var pages int
	if err := db.cur().write.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if pages != 0 {
		t.Fatalf("the write connection checkpoints automatically past %d pages; want never", pages)
	}
}
