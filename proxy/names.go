package proxy

import (
	"fmt"
	"strings"

	"github.com/posterctl/posterctl/lbapi"
)

// Backends may have a name besides their address: the supervisor calls its
// backends backend-1, backend-2…, and the dashboard, /health and the admin
// API show that name first. A backend given none goes by its address.

// ParseBackendRef reads a backend as "host:port", "http://host:port" or
// either one after "NAME=", and normalises its address as ParseBackend does.
func ParseBackendRef(s string) (lbapi.BackendRef, error) {
	return checkRef(lbapi.SplitBackendRef(s))
}

// checkRef normalises r's address and checks its name. A name equal to the
// address is no name: it is what a report shows for an unnamed backend, so a
// set read from GET /admin/backends can be PUT back as it is.
func checkRef(r lbapi.BackendRef) (lbapi.BackendRef, error) {
	if strings.Contains(r.Address, "=") {
		// NAME=NAME=host:port, or a name given twice.
		return lbapi.BackendRef{}, fmt.Errorf(`backend %q: a host has no "="`, r.Address)
	}
	addr, err := ParseBackend(r.Address)
	if err != nil {
		return lbapi.BackendRef{}, err
	}
	name := r.Name
	if name == addr || name == r.Address {
		name = ""
	}
	if name != "" {
		if err := lbapi.CheckName(name); err != nil {
			return lbapi.BackendRef{}, fmt.Errorf("backend %s: %w", addr, err)
		}
	}
	return lbapi.BackendRef{Address: addr, Name: name}, nil
}

// checkSet checks a whole backend set: valid, at most lbapi.MaxBackends, no
// address and no name twice.
func checkSet(refs []lbapi.BackendRef) ([]lbapi.BackendRef, error) {
	if len(refs) > lbapi.MaxBackends {
		return nil, fmt.Errorf("%d backends given: at most %d are supported", len(refs), lbapi.MaxBackends)
	}
	addrs := make(map[string]bool, len(refs))
	names := make(map[string]string, len(refs))
	out := make([]lbapi.BackendRef, 0, len(refs))
	for _, raw := range refs {
		r, err := checkRef(raw)
		if err != nil {
			return nil, err
		}
		if addrs[r.Address] {
			return nil, fmt.Errorf("backend %s given twice", r.Address)
		}
		addrs[r.Address] = true
		if other, ok := names[r.Name]; ok && r.Name != "" {
			return nil, fmt.Errorf("backend name %s given to both %s and %s", r.Name, other, r.Address)
		}
		names[r.Name] = r.Address
		out = append(out, r)
	}
	return out, nil
}

// Name is what reports call the backend: its name, else its address.
func (b *Backend) Name() string {
	if n := b.name.Load(); n != nil {
		return *n
	}
	return b.addr
}

// setName names the backend; an empty name keeps the one it has, so that a
// caller that knows only addresses (the admin API's older form) does not
// take names away.
func (b *Backend) setName(name string) {
	if name != "" && name != b.addr {
		b.name.Store(&name)
	}
}
