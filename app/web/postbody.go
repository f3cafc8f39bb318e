package web

import (
	"bytes"
	"io"
	"net/http"
	"unicode/utf8"
)

// postBody is the body of POST /api/posts.
type postBody struct {
	Content string `json:"content"`
}

// decodePostBody is decodeJSON into a postBody. A body of known length that
// is exactly {"content":"..."} with a plain string (no escapes, valid UTF-8)
// is read without encoding/json, whose reflection and buffers made a large
// share of a post's cost; any other body goes through decodeJSON's decoder,
// byte for byte as it arrived, so answers and errors stay the same.
func decodePostBody(w http.ResponseWriter, r *http.Request) (string, error) {
	var in postBody
	if r.ContentLength < 0 || r.ContentLength > MaxBodyBytes {
		err := decodeJSON(w, r, &in)
		return in.Content, err
	}
	if err := checkJSONType(r); err != nil {
		return "", err
	}
	// The server ends a body of known length there, so no read passes
	// MaxBodyBytes.
	buf := make([]byte, r.ContentLength)
	n, rerr := readFull(r.Body, buf)
	if rerr == nil {
		if content, ok := plainContent(buf); ok {
			return content, nil
		}
	}
	var body io.Reader = bytes.NewReader(buf[:n])
	if rerr != nil {
		body = io.MultiReader(body, errReader{rerr})
	}
	err := decodeBody(body, &in)
	return in.Content, err
}

// readFull is io.ReadFull that keeps the reader's own error, such as the
// io.EOF of a body that ended early, which the decoder reports as it is.
func readFull(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			if n == len(buf) && err == io.EOF {
				return n, nil
			}
			return n, err
		}
	}
	return n, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// plainContent returns the string of a body that is exactly one object
// with the one key "content" and a string value without escapes, control
// characters or invalid UTF-8, with JSON whitespace around the tokens; ok
// is false for anything else.
func plainContent(b []byte) (content string, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", false
	}
	i = skipSpace(b, i+1)
	const key = `"content"`
	if !bytes.HasPrefix(b[i:], []byte(key)) {
		return "", false
	}
	i = skipSpace(b, i+len(key))
	if i >= len(b) || b[i] != ':' {
		return "", false
	}
	i = skipSpace(b, i+1)
	if i >= len(b) || b[i] != '"' {
		return "", false
	}
	start := i + 1
	end := start
	for ; end < len(b) && b[end] != '"'; end++ {
		if c := b[end]; c < 0x20 || c == '\\' {
			return "", false
		}
	}
	if end >= len(b) || !utf8.Valid(b[start:end]) {
		return "", false
	}
	i = skipSpace(b, end+1)
	if i >= len(b) || b[i] != '}' {
		return "", false
	}
	if skipSpace(b, i+1) != len(b) {
		return "", false
	}
	return string(b[start:end]), true
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
