package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/supervisor"
)

func TestWriteTable(t *testing.T) {
	retry := time.Unix(100, 0)
	st := supervisor.Status{
		Supervisor: supervisor.SupervisorStatus{Pid: 42, UptimeS: 61, RSSBytes: 10 << 20, RunDir: "/run/x", URL: "http://127.0.0.1:3000/", HealthURL: "http://127.0.0.1:4000/health"},
		Children: []supervisor.ChildStatus{
			{Name: "backend-1", Pid: 7, State: supervisor.Running, Health: "healthy", Port: 3001, UptimeS: 60, CPUPercent: 1.25, RSSBytes: 20 << 20},
			{Name: "lb", State: supervisor.Backoff, Health: "unknown", Port: 3000, Restarts: 2, LastExit: "signal killed", NextRetry: &retry},
		},
	}
	var buf bytes.Buffer
	if err := writeStatusTable(&buf, st, time.Unix(99, 500e6)); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	for _, want := range []string{
		"supervisor pid 42, up 1m1s, rss 10.0 MiB, app http://127.0.0.1:3000/, health http://127.0.0.1:4000/health, run dir /run/x",
		"NAME", "LAST EXIT", "NEXT RETRY",
		"backend-1  7    running  healthy  3001  0         1m0s    1.2   20.0 MiB  -              -",
		"lb         -    backoff  unknown  3000  2         -       -     -         signal killed  in 500ms",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

// A child in backoff shows its last exit and when the next try comes.
func TestWriteTableBackoff(t *testing.T) {
	now := time.Now()
	retry := now.Add(time.Hour - 300*time.Millisecond)
	st := supervisor.Status{Children: []supervisor.ChildStatus{
		{Name: "b1", State: supervisor.Backoff, Health: "unknown", Port: 3001, Restarts: 1, LastExit: "exit 1", NextRetry: &retry},
	}}
	var buf bytes.Buffer
	if err := writeStatusTable(&buf, st, now); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "backoff") || !(strings.Contains(buf.String(), "in 59m59") || strings.Contains(buf.String(), "in 1h0m0s")) || !strings.Contains(buf.String(), "exit 1") {
		t.Fatalf("table:\n%s", buf.String())
	}
}

// Remote backends are rows without a pid, and the header names the store.
func TestWriteTableRemote(t *testing.T) {
	st := supervisor.Status{
		Supervisor: supervisor.SupervisorStatus{Pid: 1, RunDir: "/run/x", Store: "postgres://u:xxxxx@db/p"},
		Children: []supervisor.ChildStatus{
			{Name: "backend-1", Pid: 7, State: supervisor.Running, Health: "draining", Port: 3001, Address: "127.0.0.1:3001"},
			{Name: "10.0.0.2:3001", State: supervisor.Remote, Health: "healthy", Port: 3001, Address: "10.0.0.2:3001", Remote: true},
		},
	}
	var buf strings.Builder
	if err := writeStatusTable(&buf, st, time.Now()); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range strings.Split(buf.String(), "\n") {
		f := strings.Fields(l)
		found = found || len(f) > 4 && f[0] == "10.0.0.2:3001" && f[1] == "-" && f[2] == "remote" && f[3] == "healthy"
	}
	if !found || !strings.Contains(buf.String(), "store postgres://u:xxxxx@db/p") {
		t.Fatalf("table:\n%s", buf.String())
	}
}

// A failed restart is spelled out under the table, row by row.
func TestWriteTableLastError(t *testing.T) {
	st := supervisor.Status{Children: []supervisor.ChildStatus{
		{Name: "backend-1", State: supervisor.Running, Health: "draining", Port: 3001,
			LastError: "restart backend-1: not ready; left drained in the load balancer until a restart of it succeeds"},
		{Name: "backend-2", State: supervisor.Running, Health: "healthy", Port: 3002},
	}}
	var buf bytes.Buffer
	if err := writeStatusTable(&buf, st, time.Now()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if last := lines[len(lines)-1]; last != "backend-1: "+st.Children[0].LastError || strings.Contains(buf.String(), "backend-2: ") {
		t.Fatalf("table:\n%s", buf.String())
	}
}
