package proxy

import (
	"io"
	"net/http"
	"sync/atomic"
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

// idempotent methods may be repeated without changing the outcome (RFC 9110
// 9.2.2); TRACE is left out because the proxy has no reason to replay it.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// retryable decides whether a failed attempt may go to another backend.
//
// sent means that request bytes were handed to a backend connection (the
// httptrace WroteHeaders hook fired), not what an error message says. Until
// then, the backend cannot have acted, so any method may be retried; only a
// streamed body that the failed attempt already started to read cannot be
// sent again. Once sent, only requests whose repetition is harmless are
// retried, and only when the body is still in memory.
func retryable(method string, sent, idempotencyKey bool, body bodyKind, streamTouched bool) bool {
	if body == bodyStreamed && streamTouched {
		return false
	}
	if !sent {
		return true
	}
	if body == bodyStreamed {
		return false
	}
	return idempotent(method) || idempotencyKey
}

// onceBody is a streamed request body. The transport closes a body when an
// attempt fails; ignoring Close keeps an unread stream usable for the next
// backend, and touched tells whether that is still allowed.
type onceBody struct {
	r       io.Reader
	touched atomic.Bool
}

func (o *onceBody) Read(p []byte) (int, error) {
	o.touched.Store(true)
	return o.r.Read(p)
}

func (o *onceBody) Close() error { return nil }
