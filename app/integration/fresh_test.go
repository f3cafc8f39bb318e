package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// freshRounds is how many times each freshness test writes through one
// backend and reads through the other at once.
const freshRounds = 1000

// TestBackend_FreshPosts: a post acknowledged by backend 1 is listed by
// backend 2 on the very next request, however backend 2 keeps its pages.
// Each round first reads through backend 2, so that whatever it keeps is
// from before the write.
func TestBackend_FreshPosts(t *testing.T) {
	db := dbPath(t)
	b1 := startBackend(t, db, "backend-1", "--log-level", "warn")
	b2 := startBackend(t, db, "backend-2", "--log-level", "warn")
	hc := newHTTPClient(4)
	defer hc.CloseIdleConnections()
	c := &client{tb: t, hc: hc}
	c.registerAndLogin(b1.url, "fresh_writer", "fresh-password")

	paths := []string{"/api/posts", "/api/posts?limit=1", "/api/posts?limit=3"}
	for i := range freshRounds {
		path := paths[i%len(paths)]
		c.must("GET", b2.url+path, nil, http.StatusOK)
		var p struct{ ID int64 }
		c.must("POST", b1.url+"/api/posts", map[string]string{"content": fmt.Sprint("fresh post ", i)}, http.StatusCreated).decode(t, &p)
		r := c.must("GET", b2.url+path, nil, http.StatusOK)
		if !bytes.HasPrefix(r.body, fmt.Appendf(nil, `{"posts":[{"id":%d,`, p.ID)) {
			t.Fatalf("round %d: post %d, acknowledged by backend-1, is not first on backend-2 (%s): %.200s", i, p.ID, path, r.body)
		}
	}
}

// TestBackend_FreshLogout: a session logged out through backend 1 is
// refused by backend 2 on the very next request. The sessions are written
// into the file directly: a thousand logins would spend the test in bcrypt.
func TestBackend_FreshLogout(t *testing.T) {
	db := dbPath(t)
	b1 := startBackend(t, db, "backend-1", "--log-level", "warn")
	b2 := startBackend(t, db, "backend-2", "--log-level", "warn")
	hc := newHTTPClient(4)
	defer hc.CloseIdleConnections()
	(&client{tb: t, hc: hc}).registerAndLogin(b1.url, "fresh_reader", "fresh-password")
	cookies := addSessions(t, db, "fresh_reader", freshRounds)

	for i, cookie := range cookies {
		c := &client{tb: t, hc: hc, cookie: cookie}
		out, in := b1, b2
		if i%2 == 1 {
			out, in = b2, b1
		}
		c.must("GET", in.url+"/api/user", nil, http.StatusOK)
		c.must("DELETE", out.url+"/api/logout", nil, http.StatusNoContent)
		if r, err := c.do("GET", in.url+"/api/user", nil); err != nil || r.status != http.StatusUnauthorized {
			t.Fatalf("round %d: session logged out through %s still answers %d on %s (%v): %s", i, out.name, r.status, in.name, err, r.body)
		}
	}
}

// addSessions stores n live sessions of user in the file and returns their
// cookies.
func addSessions(tb testing.TB, db, user string, n int) []string {
	tb.Helper()
	conn, err := sql.Open("sqlite", db+"?_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	tx, err := conn.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	now := time.Now()
	var cookies []string
	for range n {
		token := make([]byte, 32)
		rand.Read(token)
		hash := sha256.Sum256(token)
		if _, err := tx.Exec(`INSERT INTO sessions (token_hash, user_id, created_at, expires_at)
			SELECT ?, id, ?, ? FROM users WHERE username = ?`,
			hash[:], now.UnixMilli(), now.Add(time.Hour).UnixMilli(), user); err != nil {
			tb.Fatal(err)
		}
		cookies = append(cookies, "poster_session="+base64.RawURLEncoding.EncodeToString(token))
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
	return cookies
}
