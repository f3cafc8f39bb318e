package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app"
)

// TestMigrate_PostsRebuilt opens a store made before migration 0005, with
// posts and an idempotency key, and checks that the rebuild of posts kept
// every row, every key and every reference, and that ids go on from the
// largest.
func TestMigrate_PostsRebuilt(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "poster.db")
	const keyedPost = 7
	old, err := sql.Open("sqlite", path+"?_foreign_keys=1&_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	mustExec := func(q string, args ...any) {
		t.Helper()
		if _, err := old.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	mustExec(`CREATE TABLE schema_migrations (name TEXT PRIMARY KEY)`)
	for _, name := range names {
		if name >= "migrations/0005" {
			break
		}
		buf, err := fs.ReadFile(migrationFS, name)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(string(buf))
		mustExec(`INSERT INTO schema_migrations (name) VALUES (?)`, name)
	}
	now := time.Now().UnixMilli()
	mustExec(`INSERT INTO users (id, username, password_hash, created_at) VALUES (1, 'ann', x'00', ?)`, now)
	for i := 1; i <= 10; i++ {
		mustExec(`INSERT INTO posts (user_id, content, created_at) VALUES (1, ?, ?)`, "post", now)
	}
	mustExec(`INSERT INTO idempotency_keys (user_id, key, post_id, created_at) VALUES (1, 'k1', ?, ?)`, keyedPost, now)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	db := NewDB(path)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	g := db.cur()
	query := func(q string) (v any) {
		t.Helper()
		if err := g.write.QueryRowContext(ctx, q).Scan(&v); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return v
	}
	if n := query(`SELECT count(*) FROM posts`); n != int64(10) {
		t.Fatalf("posts after the rebuild: %v, want 10", n)
	}
	if n := query(`SELECT count(*) FROM idempotency_keys WHERE post_id = 7`); n != int64(1) {
		t.Fatalf("idempotency keys after the rebuild: %v, want 1", n)
	}
	schema := query(`SELECT group_concat(sql, ';') FROM sqlite_master WHERE tbl_name = 'posts'`).(string)
	if strings.Contains(strings.ToUpper(schema), "AUTOINCREMENT") || strings.Contains(schema, "posts_user_id") {
		t.Fatalf("posts schema still has AUTOINCREMENT or posts_user_id: %s", schema)
	}
	if n := query(`SELECT count(*) FROM sqlite_sequence WHERE name = 'posts'`); n != int64(0) {
		t.Fatalf("sqlite_sequence still counts posts")
	}
	if n := query(`SELECT count(*) FROM pragma_foreign_key_check`); n != int64(0) {
		t.Fatalf("foreign key check: %v broken references", n)
	}

	// The key still names its post, and new ids go on from the largest.
	first, replayed, err := db.CreatePost(ctx, &app.Post{AuthorID: 1, Content: "again"}, "k1")
	if err != nil || !replayed || first.ID != keyedPost {
		t.Fatalf("replay of k1: %+v replayed=%v err=%v, want post %d", first, replayed, err, keyedPost)
	}
	p, _, err := db.CreatePost(ctx, &app.Post{AuthorID: 1, Content: "new"}, "")
	if err != nil || p.ID != 11 {
		t.Fatalf("new post: %+v err=%v, want id 11", p, err)
	}
}
