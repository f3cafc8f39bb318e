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
func beginOn(ctx context.Context, c *sql.Conn) (*sql.Tx, error) {
	txCtx := context.WithoutCancel(ctx)
	tx, err := c.BeginTx(txCtx, nil)
	if err == nil || !isBusy(err) {
		return tx, err
	}
	deadline := time.Now().Add(busyTimeout)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for wait := firstWriteLockWait; ; wait = min(2*wait, maxWriteLockWait) {
		if time.Now().After(deadline) {
			return nil, err
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
		}
		tx, err = c.BeginTx(txCtx, nil)
		if err == nil || !isBusy(err) {
			return tx, err
		}
	}
}
