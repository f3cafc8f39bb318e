package cluster_test

import (
	"slices"
	"testing"

	"github.com/posterctl/posterctl/cluster"
)

// Every backend, the first ones and the ones scale adds, is told the
// cluster's store id; without one recorded, none is.
func TestPlanStoreID(t *testing.T) {
	cfg := cluster.Plan(settings(), cluster.Run{Exe: "/bin/posterctl", LogFormat: "json", LogLevel: "info", StoreID: "abc123"})
	specs := append(cfg.Specs[:2:2], cfg.NewBackend("backend-3", 3003))
	for _, sp := range specs {
		i := slices.Index(sp.Args, "--store-id")
		if i < 0 || i+1 >= len(sp.Args) || sp.Args[i+1] != "abc123" {
			t.Errorf("%s: args %q lack --store-id abc123", sp.Name, sp.Args)
		}
	}
	cfg = cluster.Plan(settings(), cluster.Run{Exe: "/bin/posterctl", LogFormat: "json", LogLevel: "info"})
	if slices.Contains(cfg.Specs[0].Args, "--store-id") {
		t.Errorf("no store id recorded, yet args %q", cfg.Specs[0].Args)
	}
}
