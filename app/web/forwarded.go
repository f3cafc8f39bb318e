package web

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/posterctl/posterctl/fwdauth"
)

// peer is who sent a request, as far as the backend can tell.
type peer struct {
	// addr is the client's address: the TCP peer's, or the last hop of
	// X-Forwarded-For when the request came through the cluster's load
	// balancer. It is invalid when neither parses.
	addr netip.Addr
	// https is whether the client's own connection used TLS.
	https bool
	// viaLB is whether the request proved it came through the cluster's
	// load balancer.
	viaLB bool
}

type peerKey struct{}

// forwarded decides whom a request comes from. X-Forwarded-For and
// X-Forwarded-Proto are believed only on a request that carries the proxy
// secret, since anyone who can connect could send them; the secret's header
// is removed before anything can log it.
func (s *Server) forwarded(next http.Handler) http.Handler {
	secret := s.ProxySecret
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := peer{https: r.TLS != nil}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			p.addr = ap.Addr().Unmap()
		}
		sent := r.Header.Values(fwdauth.Header)
		r.Header.Del(fwdauth.Header)
		if len(sent) == 1 && fwdauth.Match(sent[0], secret) {
			p.viaLB = true
			if a, err := netip.ParseAddr(lastHop(r.Header.Values("X-Forwarded-For"))); err == nil {
				p.addr = a.Unmap()
			}
			if proto := lastHop(r.Header.Values("X-Forwarded-Proto")); proto != "" {
				p.https = strings.EqualFold(proto, "https")
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), peerKey{}, p)))
	})
}

// lastHop is the last comma-separated element of a header's values: the one
// the load balancer itself added, whatever the client put before it.
func lastHop(values []string) string {
	if len(values) == 0 {
		return ""
	}
	v := values[len(values)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	v = strings.TrimSpace(v)
	// A bracketed IPv6 address, or one with a port, is still the address.
	if h, _, err := net.SplitHostPort(v); err == nil {
		v = h
	}
	return strings.Trim(v, "[]")
}

// peerOf returns what forwarded found out about r; a request that did not
// pass through it (a handler called directly) counts as from nowhere.
func peerOf(r *http.Request) peer {
	p, _ := r.Context().Value(peerKey{}).(peer)
	return p
}

// isHTTPS reports whether the client reached us, or the load balancer in
// front of us, over TLS; a Secure cookie is set only then.
func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || peerOf(r).https
}
