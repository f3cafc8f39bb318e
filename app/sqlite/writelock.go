package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// Waiting for another process's write lock.
//
// SQLite's busy handler sleeps a millisecond at its first retry, then 2, 5,
// 10 ms and more, while a write transaction here holds the lock for a few
// tens of microseconds. Two backends writing at once then spend most of a
// contended write asleep with the lock free. So the write connection has no
// busy timeout, and beginWrite polls for the lock itself, starting far below
// a millisecond and backing off to one, within the same busyTimeout.
const (
	firstWriteLockWait = 10 * time.Microsecond
	maxWriteLockWait   = time.Millisecond
)

// beginWrite begins an IMMEDIATE transaction on the write pool w, waiting
// for the write lock while another connection holds it, up to busyTimeout.
// It holds the pool's one connection across the retries, which the caller
// closes after the transaction: were it given back between them, every
// writer of this process would poll at once.
func beginWrite(ctx context.Context, w *sql.DB) (*sql.Tx, *sql.Conn, error) {
	c, err := w.Conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	tx, err := beginOn(ctx, c)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return tx, c, nil
}

// beginOn is beginWrite on c. The transaction itself runs under a context
// that cannot be cancelled (see inTx); ctx ends the wait.
func beginOn(ctx context.Context, c *sql.Conn) (tx *sql.Tx, err error) {
	txCtx := context.WithoutCancel(ctx)
	err = retryWhileBusy(ctx, firstWriteLockWait, maxWriteLockWait, func() error {
		tx, err = c.BeginTx(txCtx, nil)
		return err
	})
	return tx, err
}

// retryWhileBusy calls try until it fails with anything but SQLITE_BUSY,
// waiting first, then twice as long each time up to most, for busyTimeout
// at most; ctx ends the wait with its error.
func retryWhileBusy(ctx context.Context, first, most time.Duration, try func() error) error {
	err := try()
	if err == nil || !isBusy(err) {
		return err
	}
	deadline := time.Now().Add(busyTimeout)
	timer := time.NewTimer(first)
	defer timer.Stop()
	for wait := first; ; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		if err = try(); err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		wait = min(2*wait, most)
		timer.Reset(wait)
	}
}
