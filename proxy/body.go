package proxy

import (
	"bytes"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// bodyKind is how a request body can be sent again.
type bodyKind int

const (
	bodyNone     bodyKind = iota // nothing to send
	bodyBuffered                 // kept in memory, replayable on every attempt
	bodyStreamed                 // too large to keep: can be sent once
)

func (k bodyKind) String() string {
	switch k {
	case bodyBuffered:
		return "buffered"
	case bodyStreamed:
		return "streamed"
	}
	return "none"
}

// readRequestBody keeps a body of up to max bytes in memory, so every attempt
// can send it again; a larger one, or a chunked one that turns out larger,
// is passed on as a stream that remembers whether anyone has read from it.
func readRequestBody(ctx *fasthttp.RequestCtx, max int64) (bodyKind, []byte, *onceBody, error) {
	r := &ctx.Request
	n := int64(r.Header.ContentLength())
	if !r.IsBodyStream() {
		if b := r.Body(); len(b) > 0 {
			return bodyBuffered, b, nil, nil
		}
		return bodyNone, nil, nil, nil
	}
	if n == 0 {
		return bodyNone, nil, nil, nil
	}
	s := ctx.RequestBodyStream()
	if n > max {
		// The read timeout guards the header; a large upload may take longer.
		_ = ctx.Conn().SetReadDeadline(time.Time{})
		return bodyStreamed, nil, &onceBody{r: s}, nil
	}
	if n > 0 {
		buf := make([]byte, n)
		if _, err := io.ReadFull(s, buf); err != nil {
			return bodyNone, nil, nil, fmt.Errorf("read request body: %w", err)
		}
		return bodyBuffered, buf, nil, nil
	}
	// Chunked: keep what fits, stream the rest.
	buf, err := io.ReadAll(io.LimitReader(s, max+1))
	if err != nil {
		return bodyNone, nil, nil, fmt.Errorf("read request body: %w", err)
	}
	if int64(len(buf)) <= max {
		return bodyBuffered, buf, nil, nil
	}
	_ = ctx.Conn().SetReadDeadline(time.Time{})
	return bodyStreamed, nil, &onceBody{r: io.MultiReader(bytes.NewReader(buf), s)}, nil
}

// onceBody is a streamed request body. fasthttp closes a request's body
// stream once the request is written or released; ignoring Close keeps an
// unread stream usable for the next backend, and touched tells whether that
// is still allowed.
type onceBody struct {
	r       io.Reader
	touched atomic.Bool
}

func (o *onceBody) Read(p []byte) (int, error) {
	o.touched.Store(true)
	return o.r.Read(p)
}

func (o *onceBody) Close() error { return nil }
