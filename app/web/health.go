package web

import (
	"context"
	"net/http"
	"time"

	"github.com/posterctl/posterctl/app"
)

// healthTimeout bounds the store query of a health check: the load balancer
// gives up after 1 s, so a slower answer is no answer.
const healthTimeout = time.Second

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		s.Log.Warn().Err(err).Msg("health check failed")
		// An EUNAVAILABLE message says why (the database server cannot be
		// reached, is shutting down, ...) in words meant for clients, so an
		// operator reading the LB's /health sees the cause; anything else
		// stays generic, as internal errors do everywhere.
		msg := "store unavailable"
		if app.ErrorCode(err) == app.EUNAVAILABLE {
			msg = app.ErrorMessage(err)
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{
			"status": "unavailable", "backend": s.Name, "error": msg,
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "backend": s.Name})
}
