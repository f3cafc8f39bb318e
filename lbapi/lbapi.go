// Package lbapi is the load balancer's wire contract: the JSON bodies of its
// health port (/health, /api/stats, the admin API), the backend state names,
// the limit on the backend set, and a small client. The balancer (proxy)
// serves it and the supervisor calls it; neither imports the other, so this
// leaf package is the one place where the two sides can drift apart.
package lbapi

import "time"

// MaxBackends bounds the balancer's backend set, local and remote together.
const MaxBackends = 64

// Backend states, as /health, /api/stats and the admin API report them.
const (
	StateHealthy  = "healthy"  // in rotation
	StateDown     = "down"     // failed its checks or a request; probes bring it back
	StateDraining = "draining" // no new requests; in-flight ones finish
)

// Overall balancer status in Health.Status.
const (
	StatusOK       = "ok"       // every backend not draining is in rotation
	StatusDegraded = "degraded" // some are
	StatusDown     = "down"     // none is: /health answers 503
)

// Paths on the health port.
const (
	PathHealth        = "/health"
	PathStats         = "/api/stats"
	PathMetrics       = "/metrics"
	PathAdminBackends = "/admin/backends"
)

// Health is the body of GET /health.
type Health struct {
	Status string `json:"status"`
	// PID tells which balancer answered when two generations share the
	// ports during a restart.
	PID      int             `json:"pid"`
	Backends []BackendStatus `json:"backends"`
}

// BackendStatus is a backend's entry in GET /health.
type BackendStatus struct {
	Address string `json:"address"`
	// Name is what the supervisor calls the backend (backend-1), or its
	// address when it was given none.
	Name                string     `json:"name"`
	State               string     `json:"state"`
	Healthy             bool       `json:"healthy"`
	InFlight            int64      `json:"in_flight"`
	Requests            uint64     `json:"requests"`
	Failures            uint64     `json:"failures"`
	ConsecutiveFailures int64      `json:"consecutive_failures"`
	LastCheck           *time.Time `json:"last_check"`
	LastError           string     `json:"last_error"`
}

// AdminBackend is one backend in the admin API's answers.
type AdminBackend struct {
	Address  string `json:"address"`
	Name     string `json:"name"` // as in BackendStatus
	State    string `json:"state"`
	InFlight int64  `json:"in_flight"`
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
}

// AdminBackends is the answer of GET and PUT /admin/backends.
type AdminBackends struct {
	Backends []AdminBackend `json:"backends"`
}

// SetBackends is the body of PUT /admin/backends: the whole new set.
// Entries are strings ("host:port" or "NAME=host:port") or objects
// ({"address":"host:port","name":"backend-1"}), mixed as the caller likes.
type SetBackends struct {
	Backends []BackendRef `json:"backends"`
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}
