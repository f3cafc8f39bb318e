package proxy

import (
	"embed"
	"io/fs"
	"net/http"
	"time"

	"github.com/posterctl/posterctl/lbapi"
)

// The dashboard is a page on the health port that draws itself from
// GET /api/stats once a second. It is plain HTML, CSS and JavaScript embedded
// in the binary: no CDN, no build step, nothing to fetch from elsewhere.
//
//go:embed dashboard
var dashboardFiles embed.FS

// historyLen is how many one-second samples the graphs keep.
const historyLen = 60

// sample records one second of traffic per backend and in total. Rates come
// from the difference between two snapshots of the request path's counters,
// so the request path itself only ever adds.
func (s *Server) sample(now time.Time) {
	all := s.everyBackend()
	unserved := s.metrics.unserved.Load()
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	first := s.lastSample.IsZero()
	secs := now.Sub(s.lastSample).Seconds()
	s.lastSample = now
	live := make(map[*Backend]bool, len(all))
	var total statsDelta
	var inFlight int64
	var d statsDelta
	for _, b := range all {
		live[b] = true
		cur := b.snapshot(now)
		n := b.inFlight.Load()
		inFlight += n
		h := s.history[b]
		if h == nil {
			// Joined since the last sample: its rates start next second.
			s.history[b] = &series{last: cur}
			continue
		}
		d.between(&h.last, &cur)
		h.add(d.sample(now, now.Sub(h.last.at).Seconds(), n), historyLen)
		h.last = cur
		total.add(&d)
	}
	for b := range s.history {
		if !live[b] {
			delete(s.history, b)
		}
	}
	// Answers no backend was tried for are 503s of the balancer's own.
	u := unserved - s.lastUnserved
	s.lastUnserved = unserved
	total.requests += u
	total.responses += u
	total.errors += u
	if !first {
		s.totalHistory.add(total.sample(now, secs, inFlight), historyLen)
	}
}

// Stats gathers the dashboard's data.
func (s *Server) Stats() lbapi.Stats {
	h := s.Health()
	all := s.everyBackend()
	st := lbapi.Stats{
		Status:       h.Status,
		PID:          s.pid,
		Now:          time.Now().UnixMilli(),
		Started:      s.started.UnixMilli(),
		Listen:       s.ln.Addr().String(),
		HealthListen: s.healthLn.Addr().String(),
		Backends:     make([]lbapi.DashboardBackend, 0, len(all)),
		Events:       s.events.recent(),
	}
	s.statsMu.Lock()
	st.Total = append([]lbapi.Sample{}, s.totalHistory.samples...)
	for i, b := range all {
		// h.Backends is in the same order as all, taken a moment before.
		db := lbapi.DashboardBackend{BackendStatus: b.Status(), Samples: []lbapi.Sample{}}
		if i < len(h.Backends) && h.Backends[i].Address == b.addr {
			db.BackendStatus = h.Backends[i]
		}
		if r := s.history[b]; r != nil {
			db.Samples = append(db.Samples, r.samples...)
		}
		st.Backends = append(st.Backends, db)
	}
	s.statsMu.Unlock()
	return st
}

func (s *Server) dashboardRoutes(mux *http.ServeMux) {
	static, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	files := http.FileServerFS(static)
	page := func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Everything comes from this origin; no inline script, so a
		// backend's error text that reached the page could not run.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}
	mux.HandleFunc("GET /{$}", page)
	mux.HandleFunc("GET /dashboard.js", page)
	mux.HandleFunc("GET /dashboard.css", page)
	mux.HandleFunc("GET /favicon.svg", page)
	mux.HandleFunc("GET /api/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
}
