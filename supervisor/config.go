package supervisor

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/posterctl/posterctl/lbapi"
)

// Config is what a Supervisor runs.
type Config struct {
	Specs        []Spec // started by ascending Stage, stopped in reverse
	RunDir       string
	Restart      RestartPolicy
	ReadyTimeout time.Duration // per start of a child
	Sink         LineSink      // receives the children's output
	// Shown by status. HealthURL is the LB's /health, whose per-backend
	// health status reports; it is optional.
	URL       string
	HealthURL string
	DataDir   string
	// Store is the backends' store as status shows it: a SQLite path, or a
	// PostgreSQL URL already redacted by the caller (never a password).
	Store string
	// Remote backends run elsewhere; the LB balances over them too, and
	// status lists them with their health from the LB, without a pid.
	Remote []string
	// AdminURL is the base of the LB's admin API ("http://127.0.0.1:4000"),
	// through which restart and scale drain and add backends; empty
	// without an LB.
	AdminURL string
	// LBArgs gives the LB's arguments for a backend set (NAME=host:port for
	// local ones, first; host:port for remote ones), so an LB started after
	// a scale has the current set.
	LBArgs func(backends []string) []string
	// NewBackend gives the spec of one more backend called name on port,
	// for scale; nil means the cluster cannot scale.
	NewBackend func(name string, port int) Spec
	BasePort   int // scale's first port when no local backend is left
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if len(c.Specs) == 0 {
		return errors.New("nothing to run")
	}
	if c.RunDir == "" {
		return errors.New("run dir is empty")
	}
	if c.ReadyTimeout <= 0 {
		return fmt.Errorf("ready timeout must be positive, got %v", c.ReadyTimeout)
	}
	if c.Sink == nil {
		return errors.New("no sink for child output")
	}
	names := map[string]bool{}
	for _, s := range c.Specs {
		if s.Name == "" || s.Path == "" {
			return fmt.Errorf("child %q: name and path are required", s.Name)
		}
		if names[s.Name] {
			return fmt.Errorf("child name %q used twice", s.Name)
		}
		names[s.Name] = true
	}
	if c.HealthURL != "" && !strings.HasSuffix(c.HealthURL, lbapi.PathHealth) {
		return fmt.Errorf("health URL %q: want the LB's %s", c.HealthURL, lbapi.PathHealth)
	}
	return c.Restart.Validate()
}

// ChildNames lists the children in start order.
func (c Config) ChildNames() []string {
	var out []string
	for _, s := range c.Specs {
		out = append(out, s.Name)
	}
	return slices.Clip(out)
}
