package proxy

import "net/http"

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
// sent means that request bytes reached a backend connection's socket (the
// connection counts what its writes took), not what an error message says. Until
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
