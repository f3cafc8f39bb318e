package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBackendStoreIDFlag(t *testing.T) {
	cfg, err := parseBackend(t, "--store-id", "abc123", "--db", filepath.Join(t.TempDir(), "p.db"))
	if err != nil || cfg.StoreID != "abc123" {
		t.Fatalf("cfg %+v, err %v", cfg, err)
	}
}

// preflightStore creates a new store and reads its id; the same file gives
// the same id, another file another one; a file of random bytes is named
// with its cause.
func TestPreflightStore(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "poster.db")
	id, err := preflightStore(context.Background(), db)
	if err != nil || id == "" {
		t.Fatalf("new store: id %q, err %v", id, err)
	}
	again, err := preflightStore(context.Background(), db)
	if err != nil || again != id {
		t.Fatalf("same store: id %q then %q (%v)", id, again, err)
	}
	other, err := preflightStore(context.Background(), filepath.Join(dir, "other.db"))
	if err != nil || other == id {
		t.Fatalf("another store has id %q like the first (%v)", other, err)
	}
	junk := filepath.Join(dir, "junk.db")
	b := make([]byte, 8192)
	for i := range b {
		b[i] = byte(i*7919 + 13)
	}
	if err := os.WriteFile(junk, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = preflightStore(context.Background(), junk)
	if err == nil || !strings.Contains(err.Error(), junk) || !strings.Contains(err.Error(), "not a SQLite database") {
		t.Fatalf("random bytes: %v", err)
	}
}
