package supervisor

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/rs/zerolog"
)

func newSupCfg(t *testing.T, cfg Config) *Supervisor {
	t.Helper()
	cfg.RunDir, cfg.Restart, cfg.ReadyTimeout, cfg.Sink = runDir(t), DefaultRestartPolicy(), 10*time.Second, &lines{}
	s, err := New(cfg, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Health comes from the LB's entry for each backend's address, the LB's
// state (draining) wins over its healthy flag, and remote backends are
// listed without a pid (the table of such rows: cmd/posterctl).
func TestStatusRemoteBackends(t *testing.T) {
	port := clitest.FreePort(t)
	local := fmt.Sprintf("127.0.0.1:%d", port)
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"status":"ok","backends":[
			{"address":%q,"healthy":true,"state":"draining"},
			{"address":"10.0.0.2:3001","healthy":true},
			{"address":"10.0.0.3:3001","healthy":false,"state":"down"}]}`, local)
	}))
	defer lb.Close()
	b := fake("backend-1", "serve", port, 0)
	b.Addr = local
	s := newSupCfg(t, Config{Specs: []Spec{b}, HealthURL: lb.URL + "/health",
		Remote: []string{"10.0.0.2:3001", "10.0.0.3:3001", "10.0.0.4:3001"}, Store: "postgres://u:xxxxx@db/p"})
	start(t, s)
	st := s.Status(context.Background())
	if len(st.Children) != 4 {
		t.Fatalf("%d rows, want 4: %+v", len(st.Children), st.Children)
	}
	if c := st.Children[0]; c.Health != "draining" || c.Pid == 0 || c.Remote || c.Address != local {
		t.Fatalf("local backend %+v", c)
	}
	for i, want := range []string{"healthy", "down", "unknown"} {
		c := st.Children[i+1]
		if !c.Remote || c.State != Remote || c.Pid != 0 || c.Port != 3001 || c.Health != want {
			t.Fatalf("remote row %d: %+v, want health %s", i, c, want)
		}
	}
	if st.Supervisor.Store != "postgres://u:xxxxx@db/p" {
		t.Fatalf("store %q", st.Supervisor.Store)
	}
}

// Without an LB (up --no-lb) each child's own readiness check gives its
// health.
func TestStatusNoLB(t *testing.T) {
	s := newSupCfg(t, Config{Specs: []Spec{fake("backend-1", "serve", clitest.FreePort(t), 0)}})
	start(t, s)
	if c := childStatus(t, s, "backend-1"); c.Health != "healthy" {
		t.Fatalf("health %q, want healthy from /healthz", c.Health)
	}
}
