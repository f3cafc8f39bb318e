package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/supervisor"
)

// Reasons (crash loop, fatal, a backend's /healthz) follow the table, one
// line per child that has one.
func TestWriteTableReasons(t *testing.T) {
	st := supervisor.Status{Children: []supervisor.ChildStatus{
		{Name: "backend-1", State: supervisor.Running, Health: "down", Port: 3001, Reason: "unavailable: the store file was replaced"},
		{Name: "backend-2", State: supervisor.Running, Health: "healthy", Port: 3002},
		{Name: "lb", State: supervisor.Backoff, Health: "unknown", Port: 3000, Reason: "crash loop: more than 10 restarts within 1m0s"},
	}}
	var buf bytes.Buffer
	if err := writeStatusTable(&buf, st, time.Now()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "\nbackend-1: unavailable: the store file was replaced\n") || !strings.Contains(out, "\nlb: crash loop:") || strings.Contains(out, "backend-2:") {
		t.Fatalf("table:\n%s", out)
	}
}
