//go:build race

package clitest

// Tests run with -race build the binary with -race too, so races in the
// children fail the tests as well.
const raceEnabled = true
