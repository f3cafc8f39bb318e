package cluster_test

import (
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/cluster"
	"github.com/posterctl/posterctl/supervisor"
)

// --listen is the LB's public socket's address and the app's URL; the
// health socket stays on loopback whatever it says.
func TestListen(t *testing.T) {
	base := cluster.Settings{Backends: 1, Port: 3000, HealthPort: 4000, BasePort: 3001, DataDir: "/data", Host: "127.0.0.1",
		RunDir: "/run", Grace: time.Second, ReadyTimeout: time.Second, Restart: supervisor.DefaultRestartPolicy()}
	for _, tc := range []struct{ listen, socket, url string }{
		{"", ":3000", "http://127.0.0.1:3000/"},
		{"127.0.0.1", "127.0.0.1:3000", "http://127.0.0.1:3000/"},
		{"0.0.0.0", "0.0.0.0:3000", "http://127.0.0.1:3000/"},
		{"192.0.2.7", "192.0.2.7:3000", "http://192.0.2.7:3000/"},
		{"::1", "[::1]:3000", "http://[::1]:3000/"},
	} {
		s := base
		s.Listen = tc.listen
		if err := s.Validate(); err != nil {
			t.Fatalf("--listen %q: %v", tc.listen, err)
		}
		p := cluster.Plan(s, cluster.Run{Exe: "/bin/posterctl", LogFormat: "json", LogLevel: "info"})
		lb := p.Specs[len(p.Specs)-1]
		if lb.Name != "lb" || len(lb.Listen) != 2 || lb.Listen[0] != tc.socket || lb.Listen[1] != "127.0.0.1:4000" {
			t.Errorf("--listen %q: lb sockets %q, want %q and 127.0.0.1:4000", tc.listen, lb.Listen, tc.socket)
		}
		if p.URL != tc.url || p.HealthURL != "http://127.0.0.1:4000/health" {
			t.Errorf("--listen %q: url %q health %q, want %q", tc.listen, p.URL, p.HealthURL, tc.url)
		}
	}
	for _, bad := range []string{"localhost", "example.com", "127.0.0.1:3000", "300.0.0.1"} {
		s := base
		s.Listen = bad
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "--listen") {
			t.Errorf("--listen %q: err = %v, want one naming --listen", bad, err)
		}
	}
}
