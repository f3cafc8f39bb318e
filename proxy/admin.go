package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/posterctl/posterctl/lbapi"
)

// The admin API lives on the health port only (loopback by default), never
// on the public one. It is how the supervisor drains a backend before a
// restart and changes the set when it scales.
//
//	GET  /admin/backends                  the set, removed ones still draining last
//	PUT  /admin/backends                  {"backends":["host:port",…]} replaces it;
//	                                      an entry may be "NAME=host:port" or
//	                                      {"address":"host:port","name":"NAME"}
//	POST /admin/backends/{addr}/drain     no new requests; in-flight ones finish
//	POST /admin/backends/{addr}/enable    back in rotation once healthy

// maxAdminBody bounds a request body; a set of 64 addresses is far below it.
const maxAdminBody = 64 << 10

func adminEntry(b *Backend) lbapi.AdminBackend {
	return lbapi.AdminBackend{
		Address:  b.addr,
		Name:     b.Name(),
		State:    b.State(),
		InFlight: b.inFlight.Load(),
		Requests: b.requests.Load(),
		Failures: b.failures.Load(),
	}
}

func (s *Server) adminList() lbapi.AdminBackends {
	all := s.everyBackend()
	out := lbapi.AdminBackends{Backends: make([]lbapi.AdminBackend, 0, len(all))}
	for _, b := range all {
		out.Backends = append(out.Backends, adminEntry(b))
	}
	return out
}

func (s *Server) adminRoutes(mux *http.ServeMux) {
	// Patterns carry no method, so that a wrong one gets our JSON 405 with
	// Allow rather than the mux's plain-text one.
	mux.Handle("/admin/backends", s.adminGuard(http.HandlerFunc(s.serveAdminBackends)))
	mux.Handle("/admin/backends/{addr}/drain", s.adminGuard(s.serveAdminAction(s.DrainBackend)))
	mux.Handle("/admin/backends/{addr}/enable", s.adminGuard(s.serveAdminAction(s.EnableBackend)))
	mux.Handle("/admin/", s.adminGuard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "no admin route "+r.URL.Path)
	})))
}

// adminGuard keeps the admin API to local programs. The health port is on
// loopback by default, but may be bound wider for the dashboard; a browser
// on this machine may visit a hostile page, which could post to loopback
// (a cross-origin request) or reach it under its own name (DNS rebinding).
func (s *Server) adminGuard(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusForbidden, "cross-origin request to the admin API refused")
	}))
	guarded := cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackAddr(r.RemoteAddr) {
			writeJSONError(w, http.StatusForbidden, "the admin API answers only on loopback")
			return
		}
		if !localHost(r.Host) {
			writeJSONError(w, http.StatusForbidden, fmt.Sprintf("host %q refused: use 127.0.0.1 or localhost", r.Host))
			return
		}
		guarded.ServeHTTP(w, r)
	})
}

func loopbackAddr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// localHost accepts a Host header naming this machine by address or as
// localhost; any other name may be an attacker's rebound DNS name.
func localHost(h string) bool {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return net.ParseIP(h) != nil || strings.EqualFold(h, "localhost")
}

func (s *Server) serveAdminBackends(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		writeJSON(w, http.StatusOK, s.adminList())
	case http.MethodPut:
		refs, err := decodeBackendSet(w, r)
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.ReplaceBackends(refs)
		writeJSON(w, http.StatusOK, s.adminList())
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT")
		writeJSONError(w, http.StatusMethodNotAllowed, r.Method+" not allowed: use GET or PUT")
	}
}

// decodeBackendSet reads {"backends":[…]} strictly: one JSON object, no
// unknown field, at least one valid and distinct address, distinct names.
func decodeBackendSet(w http.ResponseWriter, r *http.Request) ([]lbapi.BackendRef, error) {
	var body lbapi.SetBackends
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("body over %d KiB", maxAdminBody>>10)
		}
		if errors.Is(err, io.EOF) {
			return nil, errors.New(`empty body: want {"backends":["host:port", …]}`)
		}
		return nil, fmt.Errorf(`malformed body: %v: want {"backends":["host:port", …]}`, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("malformed body: data after the JSON object")
	}
	if len(body.Backends) == 0 { // missing, null or empty
		return nil, errors.New(`"backends" must list at least one backend`)
	}
	return checkSet(body.Backends)
}

// serveAdminAction serves POST /admin/backends/{addr}/drain or /enable.
func (s *Server) serveAdminAction(act func(addr string) (*Backend, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			writeJSONError(w, http.StatusMethodNotAllowed, r.Method+" not allowed: use POST")
			return
		}
		addr, err := ParseBackend(r.PathValue("addr"))
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, err.Error())
			return
		}
		b, err := act(addr)
		if errors.Is(err, errUnknownBackend) {
			writeJSONError(w, http.StatusNotFound, "no backend "+addr+" in the set")
			return
		}
		if err != nil {
			writeJSONError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, adminEntry(b))
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, lbapi.Error{Error: msg})
}
