package app

import "context"

// ESTORAGE means the store's disk is full: writes fail until space returns,
// reads still work. The HTTP layer answers 507 with Retry-After.
const ESTORAGE = "storage_full"

// HealthReporter is implemented by stores that watch more than their
// connection: the SQLite store checks that the file it has open is still the
// file at its path and notices a full disk. The health check asks it on
// every probe, so a broken store never stays in rotation.
type HealthReporter interface {
	// StoreHealth returns an EUNAVAILABLE *Error naming the cause when the
	// store must not serve (its file was deleted and is being restored, or
	// replaced by another file). Otherwise degraded is "" when all is well,
	// or says why writes may fail while reads go on (the disk is full).
	StoreHealth(ctx context.Context) (degraded string, err error)
}
