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

// writeQueue hands a gen's one write connection to this process's writers
// in the order they asked for it: blocked senders on a channel are served
// in turn. database/sql alone gives a freed connection to a waiter picked
// at random (connRequestSet.TakeRandom), so under a stream of posts, with
// some thirty queued on each backend, a post now and then waited twenty
// times as long as the mean: 280 ms against 12.
type writeQueue chan struct{}

func newWriteQueue() writeQueue { return make(writeQueue, 1) }

// writeConn is the write connection while a writer holds its turn.
type writeConn struct {
	*sql.Conn
	q writeQueue
}

// writeConn waits for this writer's turn, or for ctx to end, and returns
// the write connection; its Close gives the turn to the next writer.
func (g *gen) writeConn(ctx context.Context) (*writeConn, error) {
	select {
	case g.writeQ <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c, err := g.write.Conn(ctx)
	if err != nil {
		<-g.writeQ
		return nil, err
	}
	return &writeConn{Conn: c, q: g.writeQ}, nil
}

// Close gives the connection back to the pool, then the turn to the next
// writer, who finds the connection idle. A second Close gives back
// nothing: it would take another writer's turn.
func (c *writeConn) Close() error {
	if c.q == nil {
		return sql.ErrConnDone
	}
	err := c.Conn.Close()
	<-c.q
	c.q = nil
	return err
}

// beginWrite begins an IMMEDIATE transaction on g's write connection,
// waiting for its turn, then for the write lock while another process
// holds it, up to busyTimeout. It holds the connection across the retries,
// which the caller closes after the transaction: were it given back between
// them, every writer of this process would poll at once.
func beginWrite(ctx context.Context, g *gen) (*sql.Tx, *writeConn, error) {
	c, err := g.writeConn(ctx)
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
func beginOn(ctx context.Context, c *writeConn) (tx *sql.Tx, err error) {
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
