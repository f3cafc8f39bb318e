package sqlite

import (
	"path/filepath"
	"testing"
	"time"
)

// TestCheckpointMode: the WAL is truncated every checkpointEvery, whatever
// its size; in between, only a WAL past checkpointAbove is checkpointed,
// and then PASSIVE, which does not hold back writers.
func TestCheckpointMode(t *testing.T) {
	for _, c := range []struct {
		sinceTruncate time.Duration
		walSize       int64
		want          string
	}{
		{0, 0, ""},
		{checkpointEvery - time.Nanosecond, checkpointAbove, ""},
		{0, checkpointAbove + 1, checkpointPassive},
		{checkpointEvery - time.Nanosecond, 64 << 20, checkpointPassive},
		{checkpointEvery, 0, checkpointTruncate},
		{checkpointEvery, checkpointAbove + 1, checkpointTruncate},
		{time.Duration(1<<63 - 1), 0, checkpointTruncate}, // never truncated yet
	} {
		if got := checkpointMode(c.sinceTruncate, c.walSize); got != c.want {
			t.Errorf("checkpointMode(%v, %d) = %q, want %q", c.sinceTruncate, c.walSize, got, c.want)
		}
	}
}

// TestWriteConnNeverTruncatesWAL: the write connection has no
// journal_size_limit, with which the writer that starts the WAL over would
// truncate the file inside its COMMIT; the watch goroutine's TRUNCATE
// gives the space back instead.
func TestWriteConnNeverTruncatesWAL(t *testing.T) {
	db := NewDB(filepath.Join(t.TempDir(), "poster.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var limit int64
	if err := db.cur().write.QueryRow(`PRAGMA journal_size_limit`).Scan(&limit); err != nil {
		t.Fatal(err)
	}
	if limit >= 0 {
		t.Fatalf("the write connection truncates the WAL to %d bytes when it starts it over; want never", limit)
	}
}
