package web

import (
	"context"
	"net/http"
	"time"
)

// healthTimeout bounds the store query of a health check: the load balancer
// gives up after 1 s, so a slower answer is no answer.
const healthTimeout = time.Second

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		s.Log.Warn().Err(err).Msg("health check failed")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{
			"status": "unavailable", "backend": s.Name, "error": "store unavailable",
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "backend": s.Name})
}
