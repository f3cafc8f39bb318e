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
	status, body := s.storeHealth(ctx)
	writeJSON(w, status, body)
}
