package web

import (
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/posterctl/posterctl/app"
)

// appendPost appends p as JSON, byte for byte what encoding/json makes of
// it: posts are listed on nearly every request, and reflection made most of
// the cost of encoding them.
func appendPost(b []byte, p *app.Post) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, p.ID, 10)
	b = append(b, `,"author":`...)
	b = appendJSONString(b, p.Author)
	b = append(b, `,"content":`...)
	b = appendJSONString(b, p.Content)
	b = append(b, `,"created_at":"`...)
	b = p.CreatedAt.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json does with its default
// HTML escaping: <, > and & as \u003c and so on, U+2028 and U+2029 escaped,
// invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// writeRawJSON writes a JSON body made by hand, with the headers writeJSON
// sends and a length, so that a large page is not sent chunked.
func writeRawJSON(w http.ResponseWriter, status int, parts ...[]byte) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(n))
	w.WriteHeader(status)
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			// The status is sent already; a broken connection is all this can be.
			return
		}
	}
}

// writePost answers with one post, as writeJSON would.
func writePost(w http.ResponseWriter, status int, p *app.Post) {
	b := make([]byte, 0, 128+len(p.Author)+len(p.Content))
	b = appendPost(b, p)
	writeRawJSON(w, status, append(b, '\n'))
}
