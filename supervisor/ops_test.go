package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	"github.com/posterctl/posterctl/lbapi"
)

// fakeAdmin is the LB's admin API as the contract describes it, with
// backends healthy as soon as they are added or enabled.
type fakeAdmin struct {
	mu         sync.Mutex
	state      map[string]string
	order      []string
	calls      []string
	fail       bool // answer every call with 500
	failEnable bool // answer enable with 404
}

func newFakeAdmin(t *testing.T, addrs ...string) (*fakeAdmin, string) {
	a := &fakeAdmin{state: map[string]string{}}
	for _, x := range addrs {
		a.state[x] = "healthy"
		a.order = append(a.order, x)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return a, srv.URL
}

func (a *fakeAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail {
		writeJSON(w, 500, map[string]string{"error": "broken"})
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/admin/backends")
	if r.Method != http.MethodGet {
		a.calls = append(a.calls, r.Method+" "+path)
	}
	switch {
	case r.Method == http.MethodPut && path == "":
		var in lbapi.SetBackends
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || len(in.Backends) == 0 {
			writeJSON(w, 400, map[string]string{"error": "bad body"})
			return
		}
		next := map[string]string{}
		var set, order []string
		for _, x := range in.Backends {
			set = append(set, x.String()) // NAME=host:port: the names reach the LB
			order = append(order, x.Address)
			next[x.Address] = "healthy"
		}
		a.calls[len(a.calls)-1] += " " + strings.Join(set, ",")
		a.state, a.order = next, order
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/drain"):
		a.state[strings.TrimSuffix(strings.TrimPrefix(path, "/"), "/drain")] = "draining"
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/enable") && a.failEnable:
		writeJSON(w, 404, map[string]string{"error": "unknown backend"})
		return
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/enable"):
		a.state[strings.TrimSuffix(strings.TrimPrefix(path, "/"), "/enable")] = "healthy"
	case r.Method == http.MethodGet && path == "":
	default:
		writeJSON(w, 404, map[string]string{"error": "no such backend"})
		return
	}
	var out []lbapi.AdminBackend
	for _, x := range a.order {
		out = append(out, lbapi.AdminBackend{Address: x, State: a.state[x]})
	}
	writeJSON(w, 200, map[string]any{"backends": out})
}

func (a *fakeAdmin) log() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}

// backendSpec is a fake backend as the cluster's backends are described.
func backendSpec(name string, port int) Spec {
	s := fake(name, "serve", port, 0)
	s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	return s
}

func newOpsSup(t *testing.T, admin string, n int) *Supervisor {
	t.Helper()
	var specs []Spec
	for i := range n {
		specs = append(specs, backendSpec(fmt.Sprintf("backend-%d", i+1), clitest.FreePort(t)))
	}
	s := newSupCfg(t, Config{Specs: specs, AdminURL: admin, NewBackend: backendSpec})
	start(t, s)
	return s
}

func pids(s *Supervisor) map[string]int {
	out := map[string]int{}
	for _, c := range s.Status(context.Background()).Children {
		out[c.Name] = c.Pid
	}
	return out
}

type said struct {
	mu    sync.Mutex
	lines []string
}

func (s *said) say(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, fmt.Sprintf(format, args...))
}

func TestRollingRestart(t *testing.T) {
	admin, url := newFakeAdmin(t)
	s := newOpsSup(t, url, 2)
	for _, c := range s.backendChildren() {
		admin.state[c.spec.Addr] = "healthy"
		admin.order = append(admin.order, c.spec.Addr)
	}
	before := pids(s)
	var out said
	if err := s.Restart("", 5*time.Second, out.say); err != nil {
		t.Fatal(err)
	}
	after := pids(s)
	var want []string
	for _, c := range s.backendChildren() {
		name := c.spec.Name
		if after[name] == 0 || after[name] == before[name] || alive(before[name]) {
			t.Fatalf("%s: pid %d before, %d after (old alive %v)", name, before[name], after[name], alive(before[name]))
		}
		want = append(want, "POST /"+c.spec.Addr+"/drain", "POST /"+c.spec.Addr+"/enable")
		if st := childStatus(t, s, name); st.State != Running || st.Restarts != 0 {
			t.Fatalf("%s after restart: %+v, want running and no crash counted", name, st)
		}
	}
	if got := admin.log(); !slices.Equal(got, want) {
		t.Fatalf("admin calls %v, want one backend at a time: %v", got, want)
	}
	if len(out.lines) < 4 || !strings.Contains(strings.Join(out.lines, "\n"), "restarted 2 in") {
		t.Fatalf("progress %q", out.lines)
	}

	t.Run("One", func(t *testing.T) {
		before := pids(s)
		if err := s.Restart("backend-2", 5*time.Second, out.say); err != nil {
			t.Fatal(err)
		}
		after := pids(s)
		if after["backend-1"] != before["backend-1"] || after["backend-2"] == before["backend-2"] {
			t.Fatalf("pids %v then %v: want only backend-2 replaced", before, after)
		}
	})
	t.Run("Unknown", func(t *testing.T) {
		before, calls := pids(s), len(admin.log())
		err := s.Restart("backend-9", time.Second, out.say)
		var inv *InvalidError
		if !errors.As(err, &inv) || !strings.Contains(err.Error(), "backend-1, backend-2") {
			t.Fatalf("err = %v", err)
		}
		if !maps(before, pids(s)) || len(admin.log()) != calls {
			t.Fatal("a refused restart changed something")
		}
	})
	t.Run("Busy", func(t *testing.T) {
		s.opMu.Lock()
		err := s.Restart("", time.Second, out.say)
		s.opMu.Unlock()
		if !errors.Is(err, ErrBusy) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("AdminFails", func(t *testing.T) {
		admin.mu.Lock()
		admin.fail = true
		admin.mu.Unlock()
		defer func() { admin.mu.Lock(); admin.fail = false; admin.mu.Unlock() }()
		before := pids(s)
		err := s.Restart("backend-1", time.Second, out.say)
		if err == nil || !strings.Contains(err.Error(), "drain") || !strings.Contains(err.Error(), "broken") {
			t.Fatalf("err = %v", err)
		}
		if !maps(before, pids(s)) {
			t.Fatal("a backend was stopped although the LB could not drain it")
		}
	})
}

func maps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestScale(t *testing.T) {
	admin, url := newFakeAdmin(t)
	s := newOpsSup(t, url, 1)
	first := s.backendChildren()[0]
	admin.state[first.spec.Addr] = "healthy"
	admin.order = []string{first.spec.Addr}
	var out said

	if err := s.Scale(3, 5*time.Second, out.say); err != nil {
		t.Fatal(err)
	}
	bs := s.backendChildren()
	if len(bs) != 3 || bs[1].spec.Name != "backend-2" || bs[2].spec.Name != "backend-3" {
		t.Fatalf("backends after scale 3: %v", names(bs))
	}
	if bs[1].spec.Port <= first.spec.Port || bs[2].spec.Port <= bs[1].spec.Port {
		t.Fatalf("ports %d %d %d: want the next ones after the highest", first.spec.Port, bs[1].spec.Port, bs[2].spec.Port)
	}
	st := s.Status(context.Background())
	for _, c := range st.Children {
		if c.State != Running || c.Pid == 0 {
			t.Fatalf("after scale up: %+v", c)
		}
	}
	log := admin.log()
	if len(log) != 1 || log[0] != "PUT  "+strings.Join(s.lbSet(), ",") {
		t.Fatalf("admin calls %q", log)
	}
	removed := []int{pids(s)["backend-2"], pids(s)["backend-3"]}

	if err := s.Scale(1, 5*time.Second, out.say); err != nil {
		t.Fatal(err)
	}
	if bs := s.backendChildren(); len(bs) != 1 || bs[0] != first {
		t.Fatalf("after scale 1: %v", names(bs))
	}
	for _, pid := range removed {
		if alive(pid) {
			t.Fatalf("removed backend %d still runs", pid)
		}
	}
	if log := admin.log(); len(log) != 2 || log[1] != "PUT  backend-1="+first.spec.Addr {
		t.Fatalf("admin calls %q", log)
	}
	if len(s.Status(context.Background()).Children) != 1 {
		t.Fatal("status still lists removed backends")
	}
	// Scaling up again reuses the names and ports just freed.
	if err := s.Scale(2, 5*time.Second, out.say); err != nil {
		t.Fatal(err)
	}
	if bs := s.backendChildren(); len(bs) != 2 || bs[1].spec.Name != "backend-2" {
		t.Fatalf("after scale 2: %v", names(bs))
	}

	for _, n := range []int{0, -1, 65} {
		err := s.Scale(n, time.Second, out.say)
		var inv *InvalidError
		if !errors.As(err, &inv) {
			t.Fatalf("scale %d: err = %v", n, err)
		}
	}
	t.Run("LBRefuses", func(t *testing.T) {
		admin.mu.Lock()
		admin.fail = true
		admin.mu.Unlock()
		defer func() { admin.mu.Lock(); admin.fail = false; admin.mu.Unlock() }()
		before := pids(s)
		if err := s.Scale(3, time.Second, out.say); err == nil || !strings.Contains(err.Error(), "broken") {
			t.Fatalf("err = %v", err)
		}
		if !maps(before, pids(s)) {
			t.Fatalf("a failed scale left %v, had %v", pids(s), before)
		}
		if err := s.Scale(1, time.Second, out.say); err == nil {
			t.Fatal("scale down without the LB's consent succeeded")
		}
		if !maps(before, pids(s)) {
			t.Fatalf("a failed scale down left %v, had %v", pids(s), before)
		}
	})
}

func names(cs []*child) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.spec.Name)
	}
	return out
}

// restart of a Handover child: the new generation serves on the inherited
// socket before the old one stops, so a client polling all along is never
// refused.
func TestHandover(t *testing.T) {
	port := clitest.FreePort(t)
	lb := Spec{
		Name: "lb", Path: fake("lb", "lb-fd", 0, 1).Path, Env: []string{helperEnv + "=lb-fd"},
		Port: port, Listen: []string{fmt.Sprintf("127.0.0.1:%d", port)}, Handover: true, FrontDoor: true,
		ReadyURL: fmt.Sprintf("http://127.0.0.1:%d/health", port), Stage: 1,
	}
	s := newSupCfg(t, Config{Specs: []Spec{lb}})
	start(t, s)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := cl.Get(lb.ReadyURL)
			if err == nil {
				resp.Body.Close()
				ok.Add(1)
				continue
			}
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	for i := range 3 {
		before := childStatus(t, s, "lb").Pid
		var out said
		if err := s.Restart("lb", 5*time.Second, out.say); err != nil {
			t.Fatal(err)
		}
		after := childStatus(t, s, "lb")
		if after.Pid == before || after.State != Running || alive(before) || after.Restarts != 0 {
			t.Fatalf("handover %d: pid %d then %+v (old alive %v)", i, before, after, alive(before))
		}
	}
	close(stop)
	wg.Wait()
	stop = make(chan struct{})
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d of %d requests failed during 3 hand-overs; first: %v", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
	t.Logf("%d requests through 3 hand-overs, none failed", ok.Load())
	// The new generation is watched: a crash is restarted as usual.
	pid := childStatus(t, s, "lb").Pid
	if err := syscallKill(pid); err != nil {
		t.Fatal(err)
	}
	clitest.Eventually(t, 10*time.Second, func() error {
		c := childStatus(t, s, "lb")
		if c.Pid == pid || c.State != Running || c.Restarts != 1 {
			return fmt.Errorf("after kill: %+v", c)
		}
		return nil
	})
}

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// Without an LB (up --no-lb) restart and scale work on the processes alone.
func TestOpsWithoutLB(t *testing.T) {
	s := newOpsSup(t, "", 1)
	var out said
	before := pids(s)["backend-1"]
	if err := s.Restart("", 5*time.Second, out.say); err != nil {
		t.Fatal(err)
	}
	if after := pids(s)["backend-1"]; after == before || alive(before) {
		t.Fatalf("pid %d then %d", before, after)
	}
	if err := s.Scale(2, 5*time.Second, out.say); err != nil {
		t.Fatal(err)
	}
	if err := s.Scale(1, 5*time.Second, out.say); err != nil {
		t.Fatal(err)
	}
	if n := len(s.backendChildren()); n != 1 {
		t.Fatalf("%d backends", n)
	}
}

// restart and scale through the control socket: progress lines, then the
// outcome; refusals as one clear error.
func TestControlOps(t *testing.T) {
	admin, url := newFakeAdmin(t)
	s := newOpsSup(t, url, 1)
	b := s.backendChildren()[0]
	admin.state[b.spec.Addr], admin.order = "healthy", []string{b.spec.Addr}
	cl := NewClient(s.cfg.RunDir)
	defer cl.CloseIdleConnections()
	ctx := context.Background()
	var lines []string
	say := func(l string) { lines = append(lines, l) }
	if err := cl.Restart(ctx, "", time.Second, say); err != nil {
		t.Fatal(err)
	}
	if len(lines) < 3 || !strings.HasPrefix(lines[len(lines)-1], "restarted 1 in") {
		t.Fatalf("progress %q", lines)
	}
	if err := cl.Scale(ctx, 2, time.Second, say); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		call func() error
		want string
	}{
		{func() error { return cl.Restart(ctx, "nosuch", time.Second, say) }, `no child called "nosuch"`},
		{func() error { return cl.Scale(ctx, 99, time.Second, say) }, "want 1 to 64"},
		{func() error { return cl.stream(ctx, "/v1/scale?n=x&grace=1s", say) }, "n: want a number"},
		{func() error { return cl.stream(ctx, "/v1/restart?grace=-1s", say) }, "grace"},
	} {
		if err := tc.call(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("err = %v, want %q", err, tc.want)
		}
	}
	s.opMu.Lock()
	err := cl.Scale(ctx, 1, time.Second, say)
	s.opMu.Unlock()
	if err == nil || !strings.Contains(err.Error(), "already in progress") {
		t.Fatalf("busy: %v", err)
	}
	// A failure after the first step comes as the last line.
	admin.mu.Lock()
	admin.failEnable = true
	admin.mu.Unlock()
	if err := cl.Restart(ctx, "backend-1", time.Second, say); err == nil || !strings.Contains(err.Error(), "enable") {
		t.Fatalf("err = %v", err)
	}
}
