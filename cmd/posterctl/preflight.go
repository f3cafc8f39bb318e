package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/posterctl/posterctl/app/sqlite"
)

// preflightStore opens the cluster's store once before anything starts and
// returns its store id, which every backend is then told to expect.
//
// A SQLite store is checked first (sqlite.Preflight): a read-only data dir,
// a file that is not a database or fails its quick check would otherwise
// crash-loop every backend; one line naming the file and the cause says it
// at once. A PostgreSQL store unreachable or refusing would do the same.
// Opening also applies the migrations once, before backends race to.
func preflightStore(ctx context.Context, db string) (string, error) {
	if !isPostgres(db) {
		if fi, err := os.Stat(db); err == nil && fi.IsDir() {
			return "", fmt.Errorf("%s is a directory, not a SQLite database file", db)
		}
		if err := sqlite.Preflight(db); err != nil {
			if !strings.Contains(err.Error(), filepath.Dir(db)) {
				// The driver's own words may not say which file.
				err = fmt.Errorf("store %s: %w", db, err)
			}
			return "", err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	s, err := openStore(ctx, db)
	if err != nil {
		// The store's errors name the URL with its password masked.
		return "", err
	}
	id, err := s.StoreID(ctx)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return id, err
}
