package web

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/posterctl/posterctl/app"
	"github.com/rs/zerolog/hlog"
)

// Limits are the login and register rate limits. Their counters live in the
// store, so every backend of a cluster spends the same budget. A zero field
// takes DefaultLimits' value; a negative count turns that limit off.
type Limits struct {
	// LoginFailures is how many failed logins one username may have from
	// one address within LoginWindow; the next attempt from there is
	// refused until the window ends. A successful login starts over.
	LoginFailures int
	LoginWindow   time.Duration

	// AddrAttempts is how many register or login attempts one address may
	// make within AddrWindow.
	AddrAttempts int
	AddrWindow   time.Duration

	// UserFailures is how many failed logins of one username, from all
	// addresses together within LoginWindow, slow that username down to
	// one attempt per UserInterval. It slows rather than blocks, so that
	// nobody can lock a user out, and it is larger than LoginFailures, so
	// that one address alone never slows anyone else down.
	UserFailures int
	UserInterval time.Duration
}

// DefaultLimits returns the limits of a server whose Limits are zero.
func DefaultLimits() Limits {
	return Limits{
		LoginFailures: 10,
		LoginWindow:   15 * time.Minute,
		AddrAttempts:  30,
		AddrWindow:    time.Minute,
		UserFailures:  20,
		UserInterval:  time.Second,
	}
}

// withDefaults fills in l's zero fields.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.LoginFailures == 0 {
		l.LoginFailures = d.LoginFailures
	}
	if l.LoginWindow <= 0 {
		l.LoginWindow = d.LoginWindow
	}
	if l.AddrAttempts == 0 {
		l.AddrAttempts = d.AddrAttempts
	}
	if l.AddrWindow <= 0 {
		l.AddrWindow = d.AddrWindow
	}
	if l.UserFailures == 0 {
		l.UserFailures = d.UserFailures
	}
	if l.UserInterval <= 0 {
		l.UserInterval = d.UserInterval
	}
	return l
}

// rateAddr is the address part of a counter key. An IPv6 client is counted
// by its /64, the block one subscriber usually gets, or it could take a new
// address for every attempt.
func rateAddr(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "unknown"
	case a.Is4():
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// rateUser is the username part of a counter key, in the lower case the
// stores compare usernames in, or "" for a name no account can have.
func rateUser(name string) string {
	if app.ValidateUsername(name) != nil {
		return ""
	}
	return strings.ToLower(name)
}

// hit counts one event against key and reports whether it goes over limit,
// and until when. A store that cannot count is logged and lets the request
// through: a full disk must not stop people logging in.
func (s *Server) hit(r *http.Request, key string, limit int, window time.Duration) (over bool, until time.Time) {
	if limit < 0 {
		return false, time.Time{}
	}
	rate, err := s.Store.HitRate(r.Context(), key, window)
	if err != nil {
		s.counterFailed(r, "count", err)
		return false, time.Time{}
	}
	return rate.Count > limit, rate.Until
}

func (s *Server) counterFailed(r *http.Request, op string, err error) {
	hlog.FromRequest(r).Error().Err(err).Str("op", op).Msg("rate limit counter failed; the attempt is let through")
}

// tooMany answers 429 with a Retry-After of whole seconds until until.
func (s *Server) tooMany(w http.ResponseWriter, r *http.Request, until time.Time, what string) {
	secs := int64(until.Sub(s.Now())+time.Second-1) / int64(time.Second)
	secs = max(secs, 1)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeError(w, r, http.StatusTooManyRequests, fmt.Sprintf("too many %s; try again in %d s", what, secs))
}

// limitAttempt counts a register or login attempt against the client's
// address and answers 429 when it is one too many. It reports whether it
// answered.
func (s *Server) limitAttempt(w http.ResponseWriter, r *http.Request) bool {
	l := s.Limits.withDefaults()
	over, until := s.hit(r, "addr:"+rateAddr(peerOf(r).addr), l.AddrAttempts, l.AddrWindow)
	if over {
		s.tooMany(w, r, until, "attempts from your address")
	}
	return over
}

// limitLogin decides, before the password is checked, whether a login for
// username may go ahead; it answers 429 and reports true when not. The
// attempt is counted now, not once it has failed, so that concurrent
// attempts cannot all slip under the limit; loginSucceeded takes it back.
func (s *Server) limitLogin(w http.ResponseWriter, r *http.Request, username string) bool {
	user := rateUser(username)
	if user == "" {
		return false
	}
	l := s.Limits.withDefaults()
	if over, until := s.hit(r, loginKey(user, r), l.LoginFailures, l.LoginWindow); over {
		s.tooMany(w, r, until, "failed logins")
		return true
	}
	if l.UserFailures < 0 {
		return false
	}
	fails, err := s.Store.PeekRate(r.Context(), "user:"+user)
	if err != nil {
		s.counterFailed(r, "peek", err)
		return false
	}
	if fails.Count < l.UserFailures {
		return false
	}
	if over, until := s.hit(r, "slot:"+user, 1, l.UserInterval); over {
		s.tooMany(w, r, until, "failed logins for this user")
		return true
	}
	return false
}

// loginFailed counts a failed login against the username across all
// addresses.
func (s *Server) loginFailed(r *http.Request, username string) {
	user := rateUser(username)
	if user == "" {
		return
	}
	l := s.Limits.withDefaults()
	s.hit(r, "user:"+user, l.UserFailures, l.LoginWindow)
}

// loginSucceeded forgets the failures of username from this address. The
// request may be cancelled by now, but the reset must still happen.
func (s *Server) loginSucceeded(r *http.Request, username string) {
	user := rateUser(username)
	if user == "" {
		return
	}
	if err := s.Store.ResetRate(context.WithoutCancel(r.Context()), loginKey(user, r)); err != nil {
		s.counterFailed(r, "reset", err)
	}
}

func loginKey(user string, r *http.Request) string {
	return "login:" + user + "@" + rateAddr(peerOf(r).addr)
}
