package supervisor

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/posterctl/posterctl/internal/clitest"
)

// Precheck refuses what Start would refuse, and creates nothing.
func TestPrecheck(t *testing.T) {
	port := clitest.FreePort(t)
	cfg := Config{RunDir: runDir(t), Specs: []Spec{fake("b1", "serve", port, 0)}}
	if err := Precheck(context.Background(), cfg); err != nil {
		t.Fatalf("free: %v", err)
	}
	if _, err := os.Stat(cfg.RunDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Precheck created the run dir: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	err = Precheck(context.Background(), cfg)
	l.Close()
	if err == nil || !strings.Contains(err.Error(), "check ports") || !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Fatalf("port taken: %v", err)
	}
	s, _ := newSup(t, fake("b1", "serve", clitest.FreePort(t), 0))
	start(t, s)
	var ar *AlreadyRunningError
	if err := Precheck(context.Background(), Config{RunDir: s.cfg.RunDir}); !errors.As(err, &ar) || ar.Pid != os.Getpid() {
		t.Fatalf("running: %v", err)
	}
}
