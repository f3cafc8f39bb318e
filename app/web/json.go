package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/posterctl/posterctl/app"
	"github.com/rs/zerolog/hlog"
)

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 64 << 10

// httpError is a failure decided by the HTTP layer itself.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// errorStatus maps application error codes to HTTP statuses.
var errorStatus = map[string]int{
	app.ECONFLICT:     http.StatusConflict,
	app.EINTERNAL:     http.StatusInternalServerError,
	app.EINVALID:      http.StatusBadRequest,
	app.ENOTFOUND:     http.StatusNotFound,
	app.EUNAUTHORIZED: http.StatusUnauthorized,
	app.EUNAVAILABLE:  http.StatusServiceUnavailable,
	app.ESTORAGE:      http.StatusInsufficientStorage,
}

// Error writes err as JSON with the matching status. Internal errors are
// logged and reach the client only as "internal error".
func (s *Server) Error(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	if errors.As(err, &he) {
		writeError(w, r, he.status, he.msg)
		return
	}
	code := app.ErrorCode(err)
	status, ok := errorStatus[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if code == app.EINTERNAL || code == app.EUNAVAILABLE || code == app.ESTORAGE {
		hlog.FromRequest(r).Error().Err(err).Str("path", r.URL.Path).Msg("request failed")
	}
	if status == http.StatusServiceUnavailable || status == http.StatusInsufficientStorage {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, r, status, app.ErrorMessage(err))
}

func writeError(w http.ResponseWriter, _ *http.Request, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		// The status is sent already; a broken connection is all this can be.
		return
	}
}

// decodeJSON reads exactly one JSON object of at most MaxBodyBytes into v,
// rejecting other content types, unknown fields and trailing data. Requiring
// application/json also keeps plain cross-site HTML forms out: a browser
// cannot send that content type to another origin without a CORS preflight.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if err := checkJSONType(r); err != nil {
		return err
	}
	if r.ContentLength > MaxBodyBytes {
		return errTooLarge()
	}
	return decodeBody(http.MaxBytesReader(w, r.Body, MaxBodyBytes), v)
}

func checkJSONType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "application/json" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return &httpError{http.StatusUnsupportedMediaType, "Content-Type must be application/json"}
	}
	return nil
}

func errTooLarge() error {
	return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d KiB", MaxBodyBytes>>10)}
}

// decodeBody is decodeJSON once the headers passed.
func decodeBody(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return errTooLarge()
		case errors.Is(err, io.EOF):
			return &httpError{http.StatusBadRequest, "malformed JSON: request body is empty"}
		default:
			return &httpError{http.StatusBadRequest, "malformed JSON: " + err.Error()}
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge()
		}
		return &httpError{http.StatusBadRequest, "malformed JSON: body must hold exactly one JSON object"}
	}
	return nil
}
