package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/posterctl/posterctl/app"
	"golang.org/x/crypto/bcrypt"
)

// SessionCookie is the name of the login cookie.
const SessionCookie = "poster_session"

// tokenBytes is the session token size: 256 random bits.
const tokenBytes = 32

type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// readCredentials counts a register or login attempt against the client's
// address and reads its body; false means an answer was written already.
func (s *Server) readCredentials(w http.ResponseWriter, r *http.Request) (credentials, bool) {
	var in credentials
	if s.limitAttempt(w, r) {
		return in, false
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.Error(w, r, err)
		return in, false
	}
	return in, true
}

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	in, ok := s.readCredentials(w, r)
	if !ok {
		return
	}
	if err := app.ValidateUsername(in.Username); err != nil {
		s.Error(w, r, err)
		return
	}
	if err := app.ValidatePassword(in.Password); err != nil {
		s.Error(w, r, err)
		return
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(in.Password), s.BcryptCost)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	u := &app.User{Username: in.Username}
	if err := s.Store.CreateUser(r.Context(), u, hash); err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, u)
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	in, ok := s.readCredentials(w, r)
	if !ok {
		return
	}
	if s.limitLogin(w, r, in.Username) {
		return
	}
	denied := app.Errorf(app.EUNAUTHORIZED, "invalid username or password")
	u, hash, err := s.Store.FindCredentials(r.Context(), in.Username)
	if app.ErrorCode(err) == app.ENOTFOUND {
		_ = bcrypt.CompareHashAndPassword(s.dummyHash(), []byte(in.Password))
		s.loginFailed(r, in.Username)
		s.Error(w, r, denied)
		return
	} else if err != nil {
		s.Error(w, r, err)
		return
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(in.Password)) != nil {
		s.loginFailed(r, in.Username)
		s.Error(w, r, denied)
		return
	}
	s.loginSucceeded(r, in.Username)

	token := make([]byte, tokenBytes)
	rand.Read(token) // never fails; it panics on an unusable system source
	now := s.Now()
	sess := &app.Session{TokenHash: hashToken(token), UserID: u.ID, ExpiresAt: now.Add(app.SessionTTL)}
	if err := s.Store.CreateSession(r.Context(), sess); err != nil {
		s.Error(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    base64.RawURLEncoding.EncodeToString(token),
		Path:     "/",
		Expires:  sess.ExpiresAt,
		MaxAge:   int(app.SessionTTL / time.Second),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   isHTTPS(r),
	})
	writeJSON(w, http.StatusOK, u)
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if hash, ok := sessionTokenHash(r); ok {
		if err := s.Store.DeleteSession(r.Context(), hash); err != nil {
			s.Error(w, r, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   isHTTPS(r),
	})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleUser(w http.ResponseWriter, r *http.Request) {
	sess, err := s.authenticate(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sess.User)
}

// dummyHash is compared against when a login names an unknown user, so that
// the answer takes as long as for a wrong password and does not reveal which
// usernames exist. It is made on first use: a start-up cost would hit every
// posterctl command, not just the backend.
func (s *Server) dummyHash() []byte {
	s.dummyOnce.Do(func() {
		s.dummy, _ = bcrypt.GenerateFromPassword([]byte("not a real password"), s.BcryptCost)
	})
	return s.dummy
}

// authenticate returns the request's live session, or EUNAUTHORIZED.
func (s *Server) authenticate(r *http.Request) (*app.Session, error) {
	hash, ok := sessionTokenHash(r)
	if !ok {
		return nil, app.Errorf(app.EUNAUTHORIZED, "not logged in")
	}
	sess, err := s.Store.FindSession(r.Context(), hash, s.Now())
	if app.ErrorCode(err) == app.ENOTFOUND {
		return nil, app.Errorf(app.EUNAUTHORIZED, "not logged in")
	} else if err != nil {
		return nil, err
	}
	return sess, nil
}

// sessionTokenHash returns the hash of a well-formed session cookie.
func sessionTokenHash(r *http.Request) ([]byte, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return nil, false
	}
	token, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(token) != tokenBytes {
		return nil, false
	}
	return hashToken(token), true
}

// hashToken is SHA-256: the token is 256 random bits, so a slow hash would
// add nothing but latency to every request.
func hashToken(token []byte) []byte {
	sum := sha256.Sum256(token)
	return sum[:]
}
