package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/posterctl/posterctl/app"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Watch timing. A deleted or replaced file is noticed within watchInterval
// by the watch goroutine, at once by a health check or a write.
const (
	watchInterval = 250 * time.Millisecond
	// checkpointEvery is how often the WAL is truncated; in between, a WAL
	// above checkpointAbove is checkpointed without truncating it, every
	// watchInterval (checkpointMode).
	checkpointEvery = 5 * time.Second
	checkpointAbove = 1 << 20
	// retireAfter is how long the pools of a gen that was replaced stay
	// open, so that queries that picked them just before the swap finish.
	retireAfter = 5 * time.Second
	// probeFullEvery is how often a store with a full disk tries a tiny
	// write, so health goes back to ok once space returns even with no
	// client writing.
	probeFullEvery = time.Second
)

// File states other than serving.
const (
	stateOK        = ""
	stateRestoring = "restoring"
	stateReplaced  = "replaced"
	stateBroken    = "unavailable"
)

// watch is the state the watch goroutine keeps and the handlers read.
type watch struct {
	// checkMu makes checks one at a time: a restore must not run twice.
	checkMu sync.Mutex

	mu      sync.Mutex
	state   string
	reason  string
	full    string // why writes fail for lack of space, "" when they do not
	retired []retired

	// checks counts the checks that have ended, and checked is closed (and
	// replaced) as each ends: writes refused because the file moved wait on
	// them (whileMoving).
	checks  uint64
	checked chan struct{}

	cancel   context.CancelFunc
	kick     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

type retired struct {
	g  *gen
	at time.Time
}

// startWatch starts the goroutine that checks the file every watchInterval
// and keeps the WAL bounded; stopWatch ends it.
func (db *DB) startWatch() {
	ctx, cancel := context.WithCancel(context.Background())
	db.w.cancel = cancel
	db.w.kick = make(chan struct{}, 1)
	db.w.checked = make(chan struct{})
	db.w.done = make(chan struct{})
	go db.watchLoop(ctx)
}

// stopWatch stops the goroutine, then closes every gen.
func (db *DB) stopWatch() error {
	var errs []error
	db.w.stopOnce.Do(func() {
		if db.w.cancel != nil {
			db.w.cancel()
			<-db.w.done
		}
		db.w.mu.Lock()
		for _, r := range db.w.retired {
			errs = append(errs, r.g.close())
		}
		db.w.retired = nil
		db.w.mu.Unlock()
	})
	if g := db.cur(); g != nil {
		errs = append(errs, g.close())
	}
	return errors.Join(errs...)
}

func (db *DB) watchLoop(ctx context.Context) {
	defer close(db.w.done)
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	var lastTruncate, lastProbe time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-db.w.kick:
		case <-tick.C:
		}
		db.w.checkMu.Lock()
		db.check(ctx)
		db.w.checkMu.Unlock()

		now := time.Now()
		db.w.mu.Lock()
		ok, full := db.w.state == stateOK, db.w.full != ""
		db.w.mu.Unlock()
		if ok && full && now.Sub(lastProbe) >= probeFullEvery {
			lastProbe = now
			db.probeWrite(ctx)
		}
		if mode := checkpointMode(now.Sub(lastTruncate), db.walSize()); ok && mode != "" {
			if mode == checkpointTruncate {
				lastTruncate = now
			}
			db.checkpoint(ctx, mode)
		}
		db.closeRetired(now)
	}
}

// checkEnded tells the writes waiting in whileMoving that a check ended.
func (db *DB) checkEnded() {
	db.w.mu.Lock()
	defer db.w.mu.Unlock()
	db.w.checks++
	close(db.w.checked)
	db.w.checked = make(chan struct{})
}

// settleWait bounds how long a write refused because the file moved waits
// for the watch to catch up before the refusal stands. A restore copies
// the database and syncs it: well under a second on a slow disk.
const settleWait = 5 * time.Second

// movedError is a write refused before it ran because the store's file is
// being restored, or was found changed under this backend. Once the watch
// has caught up (the restore ended, the store moved to the file at the
// path) the same write can go ahead.
type movedError struct{ err *app.Error }

func (e *movedError) Error() string { return e.err.Error() }
func (e *movedError) Unwrap() error { return e.err }

// whileMoving runs write, and while it is refused because the file moved
// (movedError), again after each check of the file, for up to settleWait
// in all or until ctx ends: a client's write takes a moment longer during
// a restore rather than failing with 503. A refused write did nothing (the
// refusal comes before fn runs), so running it again is safe.
func (db *DB) whileMoving(ctx context.Context, write func() error) error {
	err := write()
	var deadline time.Time
	for {
		var moved *movedError
		if !errors.As(err, &moved) {
			return err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(settleWait)
		}
		if !db.awaitCheck(ctx, deadline) {
			return err
		}
		err = write()
	}
}

// awaitCheck waits for a check of the file that ends after the call, with
// no restore under way; false when ctx ends, deadline passes or the watch
// stops first.
func (db *DB) awaitCheck(ctx context.Context, deadline time.Time) bool {
	db.w.mu.Lock()
	seen := db.w.checks
	db.w.mu.Unlock()
	db.kickWatch()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		db.w.mu.Lock()
		ended, checked := db.w.checks > seen && db.w.state != stateRestoring, db.w.checked
		db.w.mu.Unlock()
		if ended {
			return true
		}
		select {
		case <-checked:
		case <-ctx.Done():
			return false
		case <-timer.C:
			return false
		case <-db.w.done:
			return false
		}
	}
}

// kickWatch asks the watch goroutine to check now.
func (db *DB) kickWatch() {
	select {
	case db.w.kick <- struct{}{}:
	default:
	}
}

func (db *DB) setState(state, reason string) {
	db.w.mu.Lock()
	defer db.w.mu.Unlock()
	db.w.state, db.w.reason = state, reason
}

// writable refuses writes while the file at Path is not this store's; a
// refusal during a restore is a movedError.
func (db *DB) writable() error {
	db.w.mu.Lock()
	defer db.w.mu.Unlock()
	switch db.w.state {
	case stateOK:
		return nil
	case stateRestoring:
		return &movedError{&app.Error{Code: app.EUNAVAILABLE, Message: db.w.reason}}
	}
	return &app.Error{Code: app.EUNAVAILABLE, Message: db.w.reason}
}

// stillAtPath runs in a write transaction, so it holds the write lock: a
// backend that restores a deleted file holds that lock from before its copy
// until after the rename, so a write that passes this check is either in the
// copy or goes to the file that is at the path.
func (db *DB) stillAtPath(g *gen) error {
	fi, err := os.Stat(db.Path)
	if err == nil {
		var id fileID
		if id, err = identity(fi); err == nil && id == g.file {
			return nil
		}
	}
	db.kickWatch()
	return &movedError{&app.Error{Code: app.EUNAVAILABLE, Message: fmt.Sprintf("the store file %s changed under this backend; writes resume once it is checked", db.Path)}}
}

// noteWrite records what a write's outcome says about free space.
func (db *DB) noteWrite(err error) error {
	full := app.ErrorCode(err) == app.ESTORAGE
	if full || err == nil {
		db.w.mu.Lock()
		if full {
			db.w.full = fmt.Sprintf("the disk of %s is full: writes fail (507) until space is freed, reads go on", db.Path)
		} else {
			db.w.full = ""
		}
		db.w.mu.Unlock()
	}
	return err
}

// StoreID returns the id made with the schema (migration 0002). It is read
// when the file is opened; the watch makes sure that file is still the one
// at the path.
func (db *DB) StoreID(context.Context) (string, error) {
	return db.cur().storeID, nil
}

// StoreHealth checks the file now, unless a check is under way (then its
// state, "restoring" say, is the answer), and reports the state.
func (db *DB) StoreHealth(ctx context.Context) (string, error) {
	if db.w.checkMu.TryLock() {
		db.check(ctx)
		db.w.checkMu.Unlock()
	}
	db.w.mu.Lock()
	defer db.w.mu.Unlock()
	if db.w.state != stateOK {
		return "", &app.Error{Code: app.EUNAVAILABLE, Message: db.w.reason}
	}
	return db.w.full, nil
}

// check compares the file at Path with the one the pools have open and acts
// on a difference, then tells the writes waiting for a check (checkEnded).
// The caller holds checkMu.
func (db *DB) check(ctx context.Context) {
	defer db.checkEnded()
	g := db.cur()
	fi, err := os.Stat(db.Path)
	if errors.Is(err, fs.ErrNotExist) {
		if !db.restore(ctx, g) {
			return
		}
		// Restored, by us or by a peer: the path names a new file now.
		fi, err = os.Stat(db.Path)
	}
	if err != nil {
		db.setState(stateBroken, fmt.Sprintf("cannot check the store file %s: %v", db.Path, err))
		return
	}
	id, err := identity(fi)
	if err != nil {
		db.setState(stateBroken, err.Error())
		return
	}
	if id == g.file {
		db.setState(stateOK, "")
		return
	}
	// Another file at the path. If it carries our store id, a peer restored
	// the deleted file and we must move to it; anything else is the
	// operator's to sort out.
	other, err := probeStoreID(ctx, db.Path)
	switch {
	case isBusy(err) || ctx.Err() != nil:
		// A peer is still setting the new file up; look again shortly.
		db.kickWatch()
	case err == nil && other == g.storeID:
		db.reopen(ctx, g)
	default:
		what := "a file without a store id"
		switch {
		case err == nil:
			what = "another store (store id " + other + ")"
		case isNotADB(err):
			what = "a file that is not a SQLite database"
		case !isNoTable(err):
			what = fmt.Sprintf("a file that cannot be read (%v)", err)
		}
		db.setState(stateReplaced, fmt.Sprintf(
			"the store file %s was replaced by %s while this backend serves store id %s: writes are refused until an operator puts the right file back or restarts the cluster",
			db.Path, what, g.storeID))
		// The -wal and -shm at the path are still ours, and whoever opens
		// the new file (an operator, a new backend) would replay our WAL
		// into it and corrupt it. Move our WAL into our own, unlinked, file
		// and empty it; writes are refused, so it stays empty. Busy: the
		// next check tries again.
		g.side.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	}
}

// reopen moves to the file now at Path, which carries our store id. The old
// gen's pools are closed after retireAfter.
func (db *DB) reopen(ctx context.Context, old *gen) {
	g, err := db.openGen(ctx)
	if err != nil {
		db.setState(stateBroken, fmt.Sprintf("cannot reopen the restored store file %s: %v", db.Path, err))
		return
	}
	if g.storeID != old.storeID {
		g.close()
		db.setState(stateReplaced, fmt.Sprintf("the store file %s now holds store id %s, not %s", db.Path, g.storeID, old.storeID))
		return
	}
	db.g.Store(g)
	db.w.mu.Lock()
	db.w.retired = append(db.w.retired, retired{g: old, at: time.Now()})
	db.w.state, db.w.reason = stateOK, ""
	db.w.mu.Unlock()
}

// closeRetired closes the pools of gens retired long enough ago.
func (db *DB) closeRetired(now time.Time) {
	db.w.mu.Lock()
	var keep, done []retired
	for _, r := range db.w.retired {
		if now.Sub(r.at) >= retireAfter {
			done = append(done, r)
		} else {
			keep = append(keep, r)
		}
	}
	db.w.retired = keep
	db.w.mu.Unlock()
	for _, r := range done {
		r.g.close()
	}
}

// walSize is the size of the WAL file, 0 when it cannot be read.
func (db *DB) walSize() int64 {
	fi, err := os.Stat(db.Path + "-wal")
	if err != nil {
		return 0
	}
	return fi.Size()
}

// The checkpoints of the watch goroutine. Every checkpointEvery, TRUNCATE
// copies the WAL into the database and truncates it, which gives the space
// back once a full disk has room again. It holds the write lock all along,
// syncing the file too. When it also ran every watchInterval to keep a WAL
// above checkpointAbove in check, one BenchmarkUp run (two backends) had
// 66 of them, 545 ms in all and up to 45 ms each, while writers waited;
// with PASSIVE for that, 8, 32 ms in all. PASSIVE copies what it can
// without holding back writers or waiting for readers.
//
// Nothing else cuts the WAL file back: no journal_size_limit, with which
// the writer that starts the WAL over truncates the file inside its
// COMMIT, 73 to 176 ms at a time on this disk while the process's other
// posts waited. Between two TRUNCATEs the file keeps the size it reached,
// a few MB under a stream of posts, and is written over from the start.
const (
	checkpointTruncate = "TRUNCATE"
	checkpointPassive  = "PASSIVE"
)

// checkpointMode is the checkpoint due sinceTruncate after the last
// TRUNCATE, with a WAL of walSize bytes, or "" when none is.
func checkpointMode(sinceTruncate time.Duration, walSize int64) string {
	switch {
	case sinceTruncate >= checkpointEvery:
		return checkpointTruncate
	case walSize > checkpointAbove:
		return checkpointPassive
	}
	return ""
}

// checkpoint runs a checkpoint of mode (checkpointTruncate or
// checkpointPassive).
func (db *DB) checkpoint(ctx context.Context, mode string) {
	if _, err := db.cur().side.ExecContext(ctx, `PRAGMA wal_checkpoint(`+mode+`)`); isFull(err) {
		db.noteWrite(storeErr("checkpoint", err))
	}
}

// probeWrite writes one row in place, to learn that space is back.
func (db *DB) probeWrite(ctx context.Context) {
	// One try: waiting for a check (whileMoving) would wait for this
	// goroutine, which makes them.
	db.inTxOnce(ctx, func(ctx context.Context, tx *sql.Tx, _ *gen) error {
		if _, err := tx.ExecContext(ctx, `UPDATE store_meta SET store_id = store_id WHERE one = 1`); err != nil {
			return storeErr("probe write", err)
		}
		return nil
	})
}

// isFull reports SQLITE_FULL: no space left for the database or its WAL.
func isFull(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL
}

// isNoTable reports a query on a database without the table, here a
// SQLite file that has no store id.
func isNoTable(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such table")
}

// isCantOpen reports a connection that could not open the file.
func isCantOpen(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CANTOPEN
}

// isNotADB reports a file that is not a SQLite database.
func isNotADB(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_NOTADB
}
