package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/posterctl/posterctl/app"
)

// A connection opened while the file is deleted cannot open it (the pools
// other than the first write connection never create the file): that is a
// 503, retry elsewhere, not a 500.
func TestStoreErr_CantOpen(t *testing.T) {
	db := NewDB(filepath.Join(t.TempDir(), "gone.db"))
	p, err := sql.Open("sqlite", db.dsn(poolRead))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.Ping()
	if !isCantOpen(err) {
		t.Fatalf("ping of a missing file with mode=rw = %v, want SQLITE_CANTOPEN", err)
	}
	if got := app.ErrorCode(storeErr("read", err)); got != app.EUNAVAILABLE {
		t.Fatalf("storeErr code %s, want %s", got, app.EUNAVAILABLE)
	}
}
