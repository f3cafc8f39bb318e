package storetest

import (
	"context"
	"testing"
)

// testStoreID: a store id is made with the schema, the same through every
// store on the same database and for the database's whole life, and
// different for another database.
func testStoreID(t *testing.T, open Opener) {
	ctx := context.Background()
	sub := open(t, NewClock().Now)
	id, err := sub.Store.StoreID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(id) < 16 {
		t.Fatalf("store id %q is too short to be random", id)
	}
	if again, err := sub.Store.StoreID(ctx); err != nil || again != id {
		t.Fatalf("second StoreID = %q, %v; want %q", again, err, id)
	}
	mustCreateUser(t, sub.Store, "alice")
	if other, err := sub.Reopen(t).StoreID(ctx); err != nil || other != id {
		t.Fatalf("StoreID through a second store = %q, %v; want %q", other, err, id)
	}
	if fresh, err := open(t, NewClock().Now).Store.StoreID(ctx); err != nil || fresh == id {
		t.Fatalf("StoreID of another database = %q, %v; want one other than %q", fresh, err, id)
	}
}
