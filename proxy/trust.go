package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/valyala/fasthttp"

	"github.com/posterctl/posterctl/fwdauth"
)

// trust is what the balancer tells its backends about a request and what it
// believes from the client. The backends believe X-Forwarded-For and
// X-Forwarded-Proto only from a request carrying the proxy secret (package
// fwdauth), so the balancer must never pass on a client's copy of it, and
// must itself only vouch for what it knows: the peer it saw, and the scheme
// of its own listener unless the peer is a front proxy it was told to trust.
type trust struct {
	key, secret []byte         // fwdauth.Header and its value; secret nil: none is sent
	trusted     []netip.Prefix // peers whose X-Forwarded-Proto is passed on
}

func newTrust(cfg *Config) trust {
	t := trust{key: []byte(fwdauth.Header), trusted: cfg.TrustedProxies}
	if cfg.ProxySecret != "" {
		t.secret = []byte(cfg.ProxySecret)
	}
	return t
}

// setSecret removes every copy of the secret's header a client sent
// (clientSent: scanHeaderNames saw one) and adds ours. The key and value
// are made once, at start, so this costs a copy per request.
func (t *trust) setSecret(h *fasthttp.RequestHeader, clientSent bool) {
	if clientSent {
		h.DelBytes(t.key)
	}
	if t.secret != nil {
		h.SetCanonical(t.key, t.secret)
	}
}

// proto is the X-Forwarded-Proto a backend gets: this listener's own scheme
// (plain HTTP), or "https" when a trusted front proxy says so (its last
// value counts, the one it added itself).
func (t *trust) proto(in *fasthttp.RequestHeader, remote net.Addr) string {
	if len(t.trusted) == 0 || !t.trusts(peerAddr(remote)) {
		return "http"
	}
	vals := in.PeekAll("X-Forwarded-Proto")
	if len(vals) == 0 {
		return "http"
	}
	v := vals[len(vals)-1]
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	if bytes.EqualFold(bytes.TrimSpace(v), []byte("https")) {
		return "https"
	}
	return "http"
}

func (t *trust) trusts(a netip.Addr) bool {
	for _, p := range t.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr is the IP address of a connection's peer, invalid for a peer that
// is not TCP.
func peerAddr(remote net.Addr) netip.Addr {
	if ta, ok := remote.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// validateTrust checks the secrets: they travel in header values, so they
// must be printable ASCII without spaces.
func (c *Config) validateTrust() error {
	for _, s := range []struct{ what, v string }{{"proxy secret", c.ProxySecret}, {"admin token", c.AdminToken}} {
		for _, ch := range []byte(s.v) {
			if ch < 0x21 || ch > 0x7e {
				return errors.New(s.what + ": only printable ASCII without spaces is allowed")
			}
		}
	}
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			return errors.New("trusted proxy: invalid prefix")
		}
	}
	return nil
}

// ParseTrustedProxies reads --trusted-proxy values: CIDR prefixes, or single
// addresses (a /32 or /128).
func ParseTrustedProxies(raw []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, r := range raw {
		if a, err := netip.ParseAddr(r); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(r)
		if err != nil {
			return nil, fmt.Errorf("%q: want a CIDR such as 10.0.0.0/8 or an address", r)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
