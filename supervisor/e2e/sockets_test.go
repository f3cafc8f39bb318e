package e2e

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/posterctl/posterctl/supervisor"
)

// bindable reports whether anyone could bind port on loopback now.
func bindable(port int) error {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	return l.Close()
}

// Each local backend's socket belongs to the supervisor: held from up (or
// the scale that adds the backend) through every restart, closed once the
// backend is scaled away, and all closed by down.
func TestBackendSocketsFollowTheBackends(t *testing.T) {
	c := newCluster(t)
	c.up(startLimit, "--grace", "1s")
	c.ctl("scale", "3")
	st := c.status()
	ports := map[string]int{}
	for _, name := range []string{"backend-1", "backend-2", "backend-3"} {
		b := child(st, name)
		if b.State != supervisor.Running {
			t.Fatalf("%s: %+v", name, b)
		}
		ports[name] = b.Port
		if bindable(b.Port) == nil {
			t.Fatalf("%s's port %d is free while it runs", name, b.Port)
		}
	}
	// The one scale added is restarted on its socket like the first ones.
	c.ctl("restart", "backend-3")
	if s := child(c.status(), "backend-3"); s.State != supervisor.Running || s.Port != ports["backend-3"] {
		t.Fatalf("backend-3 after restart: %+v", s)
	}
	c.ctl("scale", "1")
	for _, name := range []string{"backend-2", "backend-3"} {
		if err := bindable(ports[name]); err != nil {
			t.Fatalf("%s scaled away, but its port %d is still held: %v", name, ports[name], err)
		}
	}
	if bindable(ports["backend-1"]) == nil {
		t.Fatalf("backend-1's port %d is free while it runs", ports["backend-1"])
	}
	out, errOut, code := c.run(30*time.Second, "down", "--grace", "1s", "--run-dir", c.runDir)
	if code != 0 {
		t.Fatalf("down: exit %d %s%s", code, out, errOut)
	}
	for _, p := range []int{ports["backend-1"], c.port, c.health} {
		if err := bindable(p); err != nil {
			t.Fatal(fmt.Errorf("port %d still held after down: %w", p, err))
		}
	}
}
