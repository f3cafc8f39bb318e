package lbapi

import "time"

// Sample is one second of traffic, as the dashboard draws it. Latencies are
// in milliseconds and absent in a second without responses.
type Sample struct {
	Time      int64    `json:"t"` // Unix milliseconds
	RPS       float64  `json:"rps"`
	ErrorRate float64  `json:"error_rate"` // 5xx share of responses, 0..1
	P50       *float64 `json:"p50_ms"`
	P99       *float64 `json:"p99_ms"`
	InFlight  int64    `json:"in_flight"`
}

// DashboardBackend is one backend in GET /api/stats.
type DashboardBackend struct {
	BackendStatus
	Samples []Sample `json:"samples"` // oldest first, one per second
}

// Stats is the body of GET /api/stats, everything the dashboard shows.
type Stats struct {
	Status       string             `json:"status"`
	PID          int                `json:"pid"`
	Now          int64              `json:"now"`     // Unix milliseconds
	Started      int64              `json:"started"` // Unix milliseconds
	Listen       string             `json:"listen"`
	HealthListen string             `json:"health_listen"`
	Total        []Sample           `json:"total"`
	Backends     []DashboardBackend `json:"backends"`
	Events       []Event            `json:"events"`
}

// Event kinds: what happened to a backend.
const (
	EventAdded    = "added"    // joined the set (PUT /admin/backends)
	EventRemoved  = "removed"  // left the set, after its last request
	EventUp       = "up"       // passed its health checks
	EventDown     = "down"     // failed its checks, or a request to it
	EventDraining = "draining" // taken out of rotation on purpose
	EventEnabled  = "enabled"  // put back after a drain
)

// Event is one backend state change, as the dashboard's history shows it.
type Event struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Backend string    `json:"backend"` // its address
	Name    string    `json:"name"`    // as in BackendStatus
	Kind    string    `json:"kind"`
	Detail  string    `json:"detail,omitempty"`
}
