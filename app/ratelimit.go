package app

import (
	"context"
	"time"
)

// Rate is one counter's state: how many events its current window holds and
// when that window ends. The zero Rate is a counter with no open window.
type Rate struct {
	Count int
	Until time.Time
}

// RateService keeps the counters behind login and register rate limits. They
// live in the store, not in a backend's memory, so that every backend of a
// cluster spends one shared budget: a client alternating between backends
// gets no more attempts than one talking to a single backend.
//
// Windows are fixed: a counter's window opens at its first event, lasts the
// window given with that event, and the next event after it ends opens a new
// one. Keys are chosen by the caller and are at most MaxRateKeyLen bytes.
type RateService interface {
	// HitRate counts one event against key and returns the counter as it is
	// afterwards, this event included.
	HitRate(ctx context.Context, key string, window time.Duration) (Rate, error)

	// PeekRate returns key's counter without counting an event; the zero
	// Rate when its window has ended or it never had one.
	PeekRate(ctx context.Context, key string) (Rate, error)

	// ResetRate forgets key's counter.
	ResetRate(ctx context.Context, key string) error
}

// MaxRateKeyLen bounds a counter key, so a client cannot make the store keep
// megabytes per request.
const MaxRateKeyLen = 200

// ValidateRateKey reports an EINVALID error for an empty or too long key or a
// window that is not positive.
func ValidateRateKey(key string, window time.Duration) error {
	if key == "" || len(key) > MaxRateKeyLen {
		return Errorf(EINVALID, "rate key must be 1 to %d bytes", MaxRateKeyLen)
	}
	if window <= 0 {
		return Errorf(EINVALID, "rate window must be positive")
	}
	return nil
}
