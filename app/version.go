package app

import "context"

// Versioned is implemented by stores that can tell cheaply whether anything
// was committed since an earlier look, so that a backend may keep answers
// (the newest page of posts) in memory and still never serve a stale one.
type Versioned interface {
	// Version returns a number that differs from every number an earlier
	// call returned once anything has been committed to the store since
	// that call, by this process or any other. Two calls that return the
	// same number prove that nothing was committed between them, so an
	// answer read after the first call is still current at the second.
	Version(ctx context.Context) (uint64, error)
}
