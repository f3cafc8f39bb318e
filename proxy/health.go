package proxy

import (
	"encoding/json"
	"net/http"

	"github.com/posterctl/posterctl/lbapi"
)

// Health reports overall and per-backend state. A draining backend is left
// out on purpose, so it does not make the status "degraded"; the status is
// "ok" when every other backend is in rotation, "down" when none is.
func (s *Server) Health() lbapi.Health {
	all := s.everyBackend()
	h := lbapi.Health{PID: s.pid, Backends: make([]lbapi.BackendStatus, 0, len(all))}
	up, counted := 0, 0
	for _, b := range all {
		st := b.Status()
		if st.State != lbapi.StateDraining {
			counted++
			if st.State == lbapi.StateHealthy {
				up++
			}
		}
		h.Backends = append(h.Backends, st)
	}
	switch {
	case up == 0:
		h.Status = lbapi.StatusDown
	case up == counted:
		h.Status = lbapi.StatusOK
	default:
		h.Status = lbapi.StatusDegraded
	}
	return h
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	h := s.Health()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if h.Status == lbapi.StatusDown {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(h)
}
