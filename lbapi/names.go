package lbapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// BackendRef is a backend in the set as a caller gives it: its address and
// the name reports show before it. An empty Name leaves the name to the
// balancer: the one the backend already has, else its address.
type BackendRef struct {
	Address string `json:"address"`
	Name    string `json:"name,omitempty"`
}

// SplitBackendRef reads "NAME=ADDR" or "ADDR", the form of `lb --backend`
// and of the strings in SetBackends. Neither part is checked here: an
// address has no "=", so the first one ends the name.
func SplitBackendRef(s string) BackendRef {
	if name, addr, ok := strings.Cut(s, "="); ok {
		return BackendRef{Address: addr, Name: name}
	}
	return BackendRef{Address: s}
}

// String is the ref in the form SplitBackendRef reads.
func (r BackendRef) String() string {
	if r.Name == "" {
		return r.Address
	}
	return r.Name + "=" + r.Address
}

// MarshalJSON writes a ref without a name as a plain string, the form every
// balancer understands, and a named one as an object.
func (r BackendRef) MarshalJSON() ([]byte, error) {
	if r.Name == "" {
		return json.Marshal(r.Address)
	}
	type plain BackendRef
	return json.Marshal(plain(r))
}

// UnmarshalJSON reads either form, and refuses an object with fields it
// does not know, as the admin API refuses them everywhere else.
func (r *BackendRef) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*r = SplitBackendRef(s)
		return nil
	}
	if len(b) == 0 || b[0] != '{' {
		return errors.New(`a backend is "host:port", "NAME=host:port" or {"address":"host:port","name":"NAME"}`)
	}
	type plain BackendRef
	var p plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("backend %s: %w", b, err)
	}
	*r = BackendRef(p)
	return nil
}

// MaxNameLen bounds a backend name.
const MaxNameLen = 64

// CheckName reports why name cannot name a backend: it must be 1 to
// MaxNameLen letters, digits, ".", "-" or "_", so that it reads the same in
// logs, metrics, JSON and on the dashboard, and never holds the "=" that
// ends it on a command line.
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("backend name %q: want 1 to %d characters", name, MaxNameLen)
	}
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
		default:
			return fmt.Errorf("backend name %q: %q not allowed: use letters, digits, '.', '-' and '_'", name, c)
		}
	}
	return nil
}
