package web

import (
	"log"
	"strings"

	"github.com/rs/zerolog"
)

// newStdLogger routes net/http's own messages (TLS noise, bad requests,
// "http: superfluous WriteHeader") into zerolog so every line has one format.
func newStdLogger(l zerolog.Logger) *log.Logger {
	return log.New(zlWriter{l.With().Str("source", "net/http").Logger()}, "", 0)
}

type zlWriter struct{ l zerolog.Logger }

func (w zlWriter) Write(p []byte) (int, error) {
	w.l.Warn().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
