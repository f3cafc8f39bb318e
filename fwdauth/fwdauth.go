// Package fwdauth is how a backend tells its own load balancer from anyone
// else. Any local user can connect from 127.0.0.1, so the source address
// proves nothing; instead the load balancer sends a secret that only the
// cluster's owner can read in the Header header of every request it
// forwards, and a backend believes X-Forwarded-For and X-Forwarded-Proto only
// on a request that carries it.
//
// It is a leaf package: the load balancer (proxy) and the backends (app/web)
// both import it without importing each other.
package fwdauth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Header carries the proxy secret from the load balancer to a backend. The
// load balancer must delete any copy a client sent before adding its own, and
// a backend deletes it before logging or handling the request.
const Header = "X-Posterctl-Proxy-Secret"

// secretBytes is the size of a New secret: 256 random bits.
const secretBytes = 32

// MinLen is the shortest secret ReadFile accepts, so a placeholder such as
// "x" cannot pass for one.
const MinLen = 16

// New returns a fresh random secret as hex text.
func New() string {
	b := make([]byte, secretBytes)
	rand.Read(b) // never fails; it panics on an unusable system source
	return hex.EncodeToString(b)
}

// Match reports, in time that does not depend on where they differ, whether
// got is secret. An empty secret matches nothing, so an unset secret never
// trusts a request that sends an empty header.
func Match(got, secret string) bool {
	if secret == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(secret)) == 1
}

// ReadFile reads a secret from path: the file's text without surrounding
// white space. The file must not be readable by group or others, and the
// secret must be at least MinLen bytes of printable ASCII (it travels in a
// header).
func ReadFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("proxy secret: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("proxy secret %s: mode %04o lets other users read it; chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("proxy secret: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < MinLen {
		return "", fmt.Errorf("proxy secret %s: shorter than %d bytes", path, MinLen)
	}
	for _, c := range []byte(s) {
		if c < 0x21 || c > 0x7e {
			return "", errors.New("proxy secret " + path + ": only printable ASCII without spaces is allowed")
		}
	}
	return s, nil
}
