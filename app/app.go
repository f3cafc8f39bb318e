// Package app holds the Poster domain: users, sessions and posts, the Store
// interface the HTTP handlers depend on, and the Error type that carries an
// application error code from any store to the client.
//
// Implementations live in sub-packages (app/sqlite, app/postgres; the test
// package app/storetest holds the tests both must pass). Only cmd/posterctl
// picks one from a --db value and wires it to the HTTP server, so handlers
// never import a database driver.
package app

import "context"

// Store is everything the HTTP layer needs from persistence. One value is
// shared by every request of a backend process, and several processes may use
// the same underlying database at once, so implementations must be safe for
// concurrent use across goroutines and processes.
type Store interface {
	UserService
	SessionService
	PostService
	RateService

	// Ping runs a real query against the store; health checks use it.
	Ping(ctx context.Context) error
	// StoreID returns the store's id: random, created with the schema, the
	// same for every process on the same data. A backend on another id
	// serves another data set and must never be in rotation.
	StoreID(ctx context.Context) (string, error)
	Close() error
}
