package proxy

import (
	"net/http"
	"time"
)

// historyLen is how many one-second samples the dashboard graphs keep.
const historyLen = 60

// sample records one second of every backend's traffic.
func (s *Server) sample(now time.Time) {
	all := s.everyBackend()
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	live := make(map[*Backend]bool, len(all))
	for _, b := range all {
		live[b] = true
		cur := b.snapshot(now)
		h := s.history[b]
		if h == nil {
			s.history[b] = &series{last: cur}
			continue
		}
		h.add(sampleBetween(&h.last, &cur, b.inFlight.Load()), historyLen)
		h.last = cur
	}
	for b := range s.history {
		if !live[b] {
			delete(s.history, b)
		}
	}
}

func (s *Server) dashboardRoutes(mux *http.ServeMux) {}
