package web

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app"
)

// TestAppendPost_MatchesEncodingJSON checks the hand-made encoding against
// encoding/json, which it replaces, on the strings that need escaping and
// on random bytes, valid UTF-8 or not.
func TestAppendPost_MatchesEncodingJSON(t *testing.T) {
	strs := []string{
		"", "plain", `quote " backslash \ slash /`, "<b>&amp;</b>", "\x00\x01\x1f\x7f",
		"\b\f\n\r\t", "ж日本🙂", "\u2028\u2029", "bad \xff utf8 \xc3", "\xed\xa0\x80 surrogate",
		strings.Repeat("x", 2000),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		strs = append(strs, string(b))
	}
	times := []time.Time{
		time.UnixMilli(0).UTC(), time.UnixMilli(1764584000123).UTC(), time.UnixMilli(1764584000100).UTC(),
		time.UnixMilli(1764584000000).UTC(), time.UnixMilli(1764584000123).In(time.FixedZone("x", 3600)),
	}
	for i, s := range strs {
		p := &app.Post{ID: int64(i) * 7919, AuthorID: 3, Author: strs[(i+1)%len(strs)], Content: s, CreatedAt: times[i%len(times)]}
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendPost(nil, p); !bytes.Equal(got, want) {
			t.Fatalf("post %q:\n got %s\nwant %s", s, got, want)
		}
	}
}

// TestPostEntry_Pages checks every page the cache can answer against the
// encoding of postPage that it replaces.
func TestPostEntry_Pages(t *testing.T) {
	var posts []*app.Post
	for i := range 60 {
		posts = append(posts, &app.Post{ID: int64(100 - i), Author: "ann", Content: "post <" + strings.Repeat("y", i) + ">", CreatedAt: time.UnixMilli(int64(i) * 1001).UTC()})
	}
	want := func(posts []*app.Post, limit int) string {
		page := postPage{Posts: posts}
		if page.Posts == nil {
			page.Posts = []*app.Post{}
		}
		if len(posts) > limit {
			page.Posts = posts[:limit]
			next := page.Posts[limit-1].ID
			page.NextBefore = &next
		}
		rec := httptest.NewRecorder()
		writeJSON(rec, 200, page)
		return rec.Body.String()
	}
	for _, n := range []int{0, 1, 2, 51, 60} { // posts in the store
		for _, asked := range []int{2, 51, 61} { // rows the entry was filled with
			e := newPostEntry(7, posts[:min(n, asked)], asked)
			for limit := 1; limit <= 60; limit++ {
				if !e.serves(limit) {
					if e.all || len(e.ids) > limit {
						t.Fatalf("n=%d asked=%d limit=%d: refused a page it holds", n, asked, limit)
					}
					continue
				}
				rec := httptest.NewRecorder()
				e.write(rec, limit)
				if got, w := rec.Body.String(), want(posts[:n], limit); got != w {
					t.Fatalf("n=%d asked=%d limit=%d:\n got %s\nwant %s", n, asked, limit, got, w)
				}
				if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(rec.Body.Len()) {
					t.Fatalf("Content-Length %s for %d bytes", cl, rec.Body.Len())
				}
			}
		}
	}
}
