// Package storetest is the conformance suite for app.Store: every store
// implementation runs the same tests, so SQLite and PostgreSQL cannot drift
// apart. A store package calls Run from its own tests with an Opener that
// gives each test a fresh, empty database.
package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app"
)

// Subject is one fresh database as the suite sees it.
type Subject struct {
	// Store is open on the empty database; the Opener closes it when the
	// test ends.
	Store app.Store

	// Reopen opens another store on the same database, as a second backend
	// process does, with the same clock; it is closed when the test ends.
	Reopen func(t *testing.T) app.Store

	// Count returns the number of rows in table, read without going through
	// the store under test.
	Count func(t *testing.T, table string) int
}

// Opener opens a fresh, empty database whose stores read the time from now.
type Opener func(t *testing.T, now func() time.Time) *Subject

// Run runs the whole suite against the stores open returns.
func Run(t *testing.T, open Opener) {
	t.Run("Open", func(t *testing.T) { testOpen(t, open) })
	t.Run("Ping", func(t *testing.T) { testPing(t, open) })
	t.Run("StoreID", func(t *testing.T) { testStoreID(t, open) })
	t.Run("CreateUser", func(t *testing.T) { testCreateUser(t, open) })
	t.Run("Session", func(t *testing.T) { testSession(t, open) })
	t.Run("CreatePost", func(t *testing.T) { testCreatePost(t, open) })
	t.Run("Idempotency", func(t *testing.T) { testIdempotency(t, open) })
	t.Run("FindPosts", func(t *testing.T) { testFindPosts(t, open) })
	t.Run("Shared", func(t *testing.T) { testShared(t, open) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrentWriters(t, open) })
	t.Run("ConcurrentSameKey", func(t *testing.T) { testConcurrentSameKey(t, open) })
	t.Run("Rate", func(t *testing.T) { testRate(t, open) })
	t.Run("SessionPost", func(t *testing.T) { testSessionPost(t, open) })
	t.Run("Version", func(t *testing.T) { testVersion(t, open) })
}

// Clock is a settable time source, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at a fixed time with no sub-millisecond part, which both
// stores keep exactly.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock forward.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
