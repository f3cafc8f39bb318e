package main

import (
	"context"
	"fmt"
	"time"

	"github.com/posterctl/posterctl/lbapi"
	"github.com/posterctl/posterctl/supervisor"
)

// scaleRange says, in one line, why n backends is out of the range the
// cluster in runDir allows ("" when it is within): 1 to the LB's limit, or
// from 0 when remote backends keep serving, less one per remote backend.
// With no cluster to ask, only what no cluster could allow is refused; the
// supervisor checks again in any case.
func scaleRange(ctx context.Context, runDir string, n int) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cl := supervisor.NewClient(runDir)
	defer cl.CloseIdleConnections()
	st, err := cl.Status(ctx)
	if err != nil {
		if n < 0 || n > lbapi.MaxBackends {
			return fmt.Sprintf("invalid N %d: want 1 to %d local backends, or from 0 when the cluster has remote backends", n, lbapi.MaxBackends)
		}
		return ""
	}
	remote := 0
	for _, ch := range st.Children {
		if ch.Remote {
			remote++
		}
	}
	least, most := 1, lbapi.MaxBackends-remote
	if remote > 0 {
		least = 0 // the remote backends still serve
	}
	if n >= least && n <= most {
		return ""
	}
	if remote > 0 {
		return fmt.Sprintf("invalid N %d: this cluster allows %d to %d local backends (it has %d remote, and the load balancer takes at most %d)",
			n, least, most, remote, lbapi.MaxBackends)
	}
	return fmt.Sprintf("invalid N %d: this cluster allows %d to %d local backends", n, least, most)
}
