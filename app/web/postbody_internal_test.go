package web

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var postBodies = []string{
	`{"content":"hello"}`,
	`{"content":""}`,
	" \t\r\n{ \n\"content\" :\t\"spaced out\" \r\n} \n",
	`{"content":"caf\u00e9"}`,
	`{"content":"café ☕ 𝄞"}`,
	`{"content":"tab	inside"}`,
	"{\"content\":\"del\x7f\"}",
	"{\"content\":\"bad utf-8 \xff\xfe\"}",
	"{\"content\":\"cut \xe2\x82\"}",
	`{"content":"quote \" inside"}`,
	`{"content":"back\\slash"}`,
	`{"content":"line\nbreak"}`,
	"{\"content\":\"raw\nnewline\"}",
	`{"content":"<b>&amp;</b>"}`,
	`{"content":"x","content":"y"}`,
	`{"content":"x","other":1}`,
	`{"other":1}`,
	`{"Content":"upper"}`,
	`{"CONTENT":"upper"}`,
	`{"conte\u006et":"escaped key"}`,
	`{"content":null}`,
	`{"content":12}`,
	`{"content":["a"]}`,
	`{"content":{"a":1}}`,
	`{}`,
	``,
	`   `,
	`null`,
	`[]`,
	`"content"`,
	`{"content":"a"}}`,
	`{"content":"a"} {"content":"b"}`,
	`{"content":"a"} x`,
	`{"content":"a"`,
	`{"content":"a}`,
	`{"content":`,
	`{"content"`,
	`{"content" "a"}`,
	`{"content":"a",}`,
	`{content:"a"}`,
	"\ufeff{\"content\":\"bom\"}",
	"{\"content\":\"a\"}\x00",
	"{\"content\":\"a\"}\f",
	"{\f\"content\":\"a\"}",
}

// reference decodes b as decodeJSON does.
func reference(b []byte) (string, error) {
	var in postBody
	err := decodeBody(bytes.NewReader(b), &in)
	return in.Content, err
}

// checkPlain fails when plainContent accepts b with another answer than
// encoding/json's.
func checkPlain(t *testing.T, b []byte) {
	t.Helper()
	got, ok := plainContent(b)
	if !ok {
		return
	}
	want, err := reference(b)
	if err != nil || got != want {
		t.Fatalf("plainContent(%q) = %q; encoding/json: %q, %v", b, got, want, err)
	}
}

// TestPlainContent: every body the fast path takes, encoding/json reads to
// the same content; it takes the plain posts a client sends.
func TestPlainContent(t *testing.T) {
	for _, b := range postBodies {
		checkPlain(t, []byte(b))
	}
	for _, b := range []string{`{"content":"hello"}`, " {\"content\" : \"café ☕\"}\n", "{\"content\":\"del\x7f\"}"} {
		if _, ok := plainContent([]byte(b)); !ok {
			t.Errorf("plainContent(%q) is not taken", b)
		}
	}
	// Mutations of plain bodies: bytes swapped for the ones JSON cares
	// about, inserted and deleted.
	alphabet := []byte("{}[]\":,\\ \t\r\nuc0é\xff\x00\x1fxnull")
	rng := rand.New(rand.NewSource(1))
	for range 200000 {
		b := []byte(postBodies[rng.Intn(5)])
		for range 1 + rng.Intn(3) {
			i := rng.Intn(len(b) + 1)
			c := alphabet[rng.Intn(len(alphabet))]
			switch rng.Intn(3) {
			case 0:
				if i < len(b) {
					b[i] = c
				}
			case 1:
				b = append(b[:i], append([]byte{c}, b[i:]...)...)
			default:
				if i < len(b) {
					b = append(b[:i], b[i+1:]...)
				}
			}
		}
		checkPlain(t, b)
	}
}

func FuzzPlainContent(f *testing.F) {
	for _, b := range postBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(checkPlain)
}

// TestDecodePostBody: the post's body decoder answers every body, and every
// way a body can end, as decodeJSON does.
func TestDecodePostBody(t *testing.T) {
	type result struct {
		content string
		status  int
		msg     string
	}
	outcome := func(content string, err error) result {
		var he *httpError
		if errors.As(err, &he) {
			return result{"", he.status, he.msg}
		} else if err != nil {
			return result{"", -1, err.Error()}
		}
		return result{content, 0, ""}
	}
	// each makes the same request twice: one for each decoder.
	type maker func() *http.Request
	body := func(ctype, b string, length int64, cut error) maker {
		return func() *http.Request {
			var rd io.Reader = strings.NewReader(b)
			if cut != nil {
				rd = io.MultiReader(rd, errReader{cut})
			}
			r := httptest.NewRequest(http.MethodPost, "/api/posts", rd)
			r.ContentLength = length
			if ctype != "" {
				r.Header.Set("Content-Type", ctype)
			}
			return r
		}
	}
	var cases []maker
	for _, b := range postBodies {
		cases = append(cases,
			body("application/json", b, int64(len(b)), nil),
			body("application/json", b, -1, nil),
		)
	}
	big := `{"content":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	cases = append(cases,
		body("application/json; charset=utf-8", `{"content":"typed"}`, 19, nil),
		body("Application/JSON", `{"content":"typed"}`, 19, nil),
		body("text/plain", `{"content":"typed"}`, 19, nil),
		body("", `{"content":"typed"}`, 19, nil),
		body("application/json", big, int64(len(big)), nil),
		body("application/json", big, -1, nil),
		// Bodies that end before their length, as a client that goes
		// away leaves them.
		body("application/json", `{"content":"ab`, 40, io.ErrUnexpectedEOF),
		body("application/json", `{"content":"ab"}`, 40, io.ErrUnexpectedEOF),
		body("application/json", `{"content":"ab"}`, 40, io.EOF),
		body("application/json", ``, 40, io.EOF),
	)
	for _, mk := range cases {
		var in postBody
		want := outcome(in.Content, decodeJSON(httptest.NewRecorder(), mk(), &in))
		r := mk()
		got := outcome(decodePostBody(httptest.NewRecorder(), r))
		if got != want {
			t.Errorf("body of length %d, Content-Type %q: got %+v, decodeJSON %+v", r.ContentLength, r.Header.Get("Content-Type"), got, want)
		}
	}
}
