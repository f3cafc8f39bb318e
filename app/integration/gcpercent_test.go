package integration

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
)

// heapGoal is the goal of a line of GODEBUG=gctrace=1.
var heapGoal = regexp.MustCompile(`(\d+) MB goal`)

// TestBackend_GCPercent: a backend collects at GOGC=400 unless GOGC says
// otherwise. The runtime's smallest heap goal is 4 MB scaled by GOGC/100,
// so the GC trace shows goals of at least 16 MB, and with GOGC=100 set, of
// 4 MB.
func TestBackend_GCPercent(t *testing.T) {
	for _, tc := range []struct {
		name             string
		env              string
		minGoal, maxGoal int
	}{
		{"Default", "", 16, 1 << 20},
		{"GOGC", "GOGC=100", 1, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := clitest.FreePort(t)
			cmd := exec.Command(bin, "--log-level", "warn", "backend", "--port", strconv.Itoa(port), "--db", dbPath(t), "--name", "gc")
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "GOGC=") && !strings.HasPrefix(kv, "GODEBUG=") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, "GODEBUG=gctrace=1")
			if tc.env != "" {
				cmd.Env = append(cmd.Env, tc.env)
			}
			be := &backend{Process: clitest.StartCmd(t, cmd), name: "gc", port: port, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
			waitHealthy(t, be)
			// A collection while the process started, before the backend
			// set its GOGC, does not count.
			started := len(be.Output())
			hc := newHTTPClient(1)
			defer hc.CloseIdleConnections()
			c := &client{tb: t, hc: hc}
			c.registerAndLogin(be.url, "gc_user", "gc-password")
			// Posts too long to store: each reads its 60 KB body, so the
			// heap reaches a goal within a few hundred of them.
			long := map[string]string{"content": strings.Repeat("x", 60<<10)}
			var goals []int
			clitest.Eventually(t, 60*time.Second, func() error {
				for range 20 {
					c.must("POST", be.url+"/api/posts", long, http.StatusBadRequest)
				}
				goals = goals[:0]
				for _, m := range heapGoal.FindAllStringSubmatch(be.Output()[started:], -1) {
					n, _ := strconv.Atoi(m[1])
					goals = append(goals, n)
				}
				if len(goals) == 0 {
					return fmt.Errorf("no collection yet")
				}
				return nil
			})
			for _, g := range goals {
				if g < tc.minGoal || g > tc.maxGoal {
					t.Fatalf("heap goals %v MB, want each in [%d, %d]:\n%s", goals, tc.minGoal, tc.maxGoal, be.Output())
				}
			}
		})
	}
}
