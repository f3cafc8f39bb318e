package integration

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
)

// writeLoad posts through several backends until stopped and records every
// outcome with the time its request was sent.
type writeLoad struct {
	mu      sync.Mutex
	acked   map[string]time.Time // content -> sent
	refused []time.Time          // 503 answers, by time sent
	bad     []string

	stop chan struct{}
	wg   sync.WaitGroup
}

func startWriteLoad(t *testing.T, c *client, backends []*backend, perBackend int) *writeLoad {
	w := &writeLoad{acked: map[string]time.Time{}, stop: make(chan struct{})}
	for bi, b := range backends {
		for g := range perBackend {
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				for i := 0; ; i++ {
					select {
					case <-w.stop:
						return
					default:
					}
					content := fmt.Sprintf("b%d-g%d-%d", bi, g, i)
					sent := time.Now()
					r, err := c.do("POST", b.url+"/api/posts", map[string]string{"content": content})
					w.mu.Lock()
					switch {
					case err != nil:
						w.bad = append(w.bad, fmt.Sprintf("%s: %v", content, err))
					case r.status == http.StatusCreated:
						w.acked[content] = sent
					case r.status == http.StatusServiceUnavailable && json.Valid(r.body) && r.header.Get("Retry-After") != "":
						w.refused = append(w.refused, sent)
					default:
						w.bad = append(w.bad, fmt.Sprintf("%s: %d %s", content, r.status, r.body))
					}
					w.mu.Unlock()
				}
			}()
		}
	}
	t.Cleanup(w.end)
	return w
}

func (w *writeLoad) end() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

func (w *writeLoad) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// healthz returns the status and body of b's /healthz.
func healthz(hc *http.Client, b *backend) (int, map[string]string, error) {
	resp, err := hc.Get(b.url + "/healthz")
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var v map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, v, nil
}

// postsInFile reads every post's content from the file at path.
func postsInFile(t *testing.T, path string) map[string]bool {
	t.Helper()
	conn, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(`SELECT content FROM posts`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]bool{}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		got[c] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestStore_Deleted: two backend processes under write load; the store
// file, its WAL and shared-memory index are deleted. One backend restores
// the file from its open connection, both move to it, every post answered
// 201 is in the file at the path, and no write gets a 503: writes wait
// out the restore.
func TestStore_Deleted(t *testing.T) {
	db := dbPath(t)
	backends := []*backend{startBackend(t, db, "a"), startBackend(t, db, "b")}
	hc := newHTTPClient(8)
	defer hc.CloseIdleConnections()
	c := &client{tb: t, hc: hc}
	c.registerAndLogin(backends[0].url, "alice", "alice-password")
	_, h, err := healthz(hc, backends[0])
	if err != nil {
		t.Fatal(err)
	}
	storeID := h["store_id"]
	if storeID == "" {
		t.Fatalf("healthz has no store_id: %v", h)
	}

	load := startWriteLoad(t, c, backends, 2)
	clitest.Eventually(t, 10*time.Second, func() error {
		if n := load.count(); n < 200 {
			return fmt.Errorf("%d posts so far", n)
		}
		return nil
	})
	old, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(db + suffix); err != nil {
			t.Fatal(err)
		}
	}
	clitest.Eventually(t, 10*time.Second, func() error {
		fi, err := os.Stat(db)
		if err != nil {
			return err
		} else if os.SameFile(fi, old) {
			return errors.New("the old file is still at the path")
		}
		for _, b := range backends {
			status, h, err := healthz(hc, b)
			if err != nil {
				return err
			} else if status != http.StatusOK || h["store_id"] != storeID {
				return fmt.Errorf("%s: healthz %d %v", b.name, status, h)
			}
		}
		return nil
	})
	after := load.count()
	clitest.Eventually(t, 10*time.Second, func() error {
		if n := load.count(); n < after+200 {
			return fmt.Errorf("%d posts since the restore", n-after)
		}
		return nil
	})
	load.end()

	if len(load.bad) > 0 {
		t.Fatalf("%d writes neither 201 nor 503 JSON, first: %s", len(load.bad), load.bad[0])
	}
	inFile := postsInFile(t, db)
	for content := range load.acked {
		if !inFile[content] {
			t.Fatalf("post %q was answered 201 but is not in the file at the path", content)
		}
	}
	// Writes wait out the restore rather than fail.
	if n := len(load.refused); n > 0 {
		t.Fatalf("%d writes got 503 over %v, want none", n, load.refused[n-1].Sub(load.refused[0]))
	}
	t.Logf("%d posts acknowledged", len(load.acked))

	// Every backend serves the file at the path: each lists as many posts
	// as the file holds and the same newest one.
	for _, b := range backends {
		var page struct {
			Posts []struct {
				Content string `json:"content"`
			} `json:"posts"`
		}
		r := c.must("GET", b.url+"/api/posts?limit=1", nil, http.StatusOK)
		r.decode(t, &page)
		if len(page.Posts) != 1 || !inFile[page.Posts[0].Content] {
			t.Fatalf("%s serves %s, not the file at the path", b.name, r.body)
		}
	}
	if id := rawStoreID(t, db); id != storeID {
		t.Fatalf("store id at the path %q, want %q", id, storeID)
	}
}

func rawStoreID(t *testing.T, path string) string {
	t.Helper()
	conn, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var id string
	if err := conn.QueryRow(`SELECT store_id FROM store_meta`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestStore_Replaced: another store moved over the file under write load.
// Within 2 s every backend reports the reason in /healthz (503); no write
// sent after the move is answered 201, and the other store gets no post.
func TestStore_Replaced(t *testing.T) {
	db := dbPath(t)
	backends := []*backend{startBackend(t, db, "a"), startBackend(t, db, "b")}
	hc := newHTTPClient(8)
	defer hc.CloseIdleConnections()
	c := &client{tb: t, hc: hc}
	c.registerAndLogin(backends[0].url, "alice", "alice-password")

	other := filepath.Join(t.TempDir(), "other.db")
	o := startBackend(t, other, "other")
	o.Signal(syscall.SIGINT)
	o.Wait(t, 15*time.Second)

	load := startWriteLoad(t, c, backends, 2)
	clitest.Eventually(t, 10*time.Second, func() error {
		if n := load.count(); n < 100 {
			return fmt.Errorf("%d posts so far", n)
		}
		return nil
	})
	otherID := rawStoreID(t, other)
	if err := os.Rename(other, db); err != nil {
		t.Fatal(err)
	}
	moved := time.Now()
	clitest.Eventually(t, 2*time.Second, func() error {
		for _, b := range backends {
			status, h, err := healthz(hc, b)
			if err != nil {
				return err
			} else if status != http.StatusServiceUnavailable || !strings.Contains(h["error"], "was replaced by another store") {
				return fmt.Errorf("%s: healthz %d %v", b.name, status, h)
			}
		}
		return nil
	})
	// Let the load run on against the replaced file for a while.
	load.mu.Lock()
	refusedAt := len(load.refused)
	load.mu.Unlock()
	clitest.Eventually(t, 10*time.Second, func() error {
		load.mu.Lock()
		defer load.mu.Unlock()
		if n := len(load.refused); n < refusedAt+100 {
			return fmt.Errorf("%d writes refused since", n-refusedAt)
		}
		return nil
	})
	load.end()
	if len(load.bad) > 0 {
		t.Fatalf("%d writes neither 201 nor 503 JSON, first: %s", len(load.bad), load.bad[0])
	}
	for content, sent := range load.acked {
		if sent.After(moved) {
			t.Fatalf("post %q sent %v after the move was answered 201", content, sent.Sub(moved))
		}
	}
	// Read the way an operator would, -wal and -shm included: the file at
	// the path is the other store, intact, without our posts.
	if n := len(postsInFile(t, db)); n != 0 {
		t.Fatalf("the other store got %d posts", n)
	}
	if id := rawStoreID(t, db); id != otherID {
		t.Fatalf("store id at the path %q, want the other store's %q", id, otherID)
	}
	conn, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var check string
	if err := conn.QueryRow(`PRAGMA quick_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("quick_check of the other store = %q, %v", check, err)
	}
}
