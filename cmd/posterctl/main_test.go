package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/posterctl/posterctl/internal/clitest"
	"go.uber.org/goleak"
)

// bin is the posterctl binary the integration tests run.
var bin string

func TestMain(m *testing.M) {
	path, cleanup, err := clitest.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = path
	code := m.Run()
	cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
