package main

import (
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestReorderArgs(t *testing.T) {
	app := withExitCodes(newApp())
	for name, tc := range map[string]struct{ in, want string }{
		"RestartLB":       {"restart lb --run-dir X", "restart --run-dir X lb"},
		"LogsLines":       {"logs backend-1 -n 5", "logs -n 5 backend-1"},
		"LogsFollow":      {"logs backend-1 -f -n 2", "logs -f -n 2 backend-1"},
		"BoolTakesNoArg":  {"logs -f backend-1", "logs -f backend-1"},
		"BackendDB":       {"backend 3001 --db x", "backend --db x 3001"},
		"BackendShort":    {"backend 3001 -p 3002", "backend -p 3002 3001"},
		"ScaleRunDir":     {"scale 4 --run-dir X", "scale --run-dir X 4"},
		"Inline":          {"restart lb --grace=3s", "restart --grace=3s lb"},
		"FlagsFirst":      {"restart --run-dir X lb", "restart --run-dir X lb"},
		"Terminator":      {"scale -- -1", "scale -- -1"},
		"NegativeNumber":  {"scale -1 --run-dir X", "scale --run-dir X -- -1"},
		"ArgsThenDashes":  {"logs backend-1 -- -n", "logs -- backend-1 -n"},
		"DashesKeepFlags": {"restart -- --run-dir X", "restart -- --run-dir X"},
		"GlobalAfter":     {"status --log-level debug --json", "--log-level debug status --json"},
		"GlobalBefore":    {"--log-format json restart lb --run-dir X", "--log-format json restart --run-dir X lb"},
		"ValueLikeFlag":   {"up --data-dir -d --backends 1", "up --data-dir -d --backends 1"},
		"ValueLikeName":   {"logs --run-dir lb supervisor", "logs --run-dir lb supervisor"},
		"UnknownStays":    {"restart lb --bogus", "restart --bogus lb"},
		"MissingValue":    {"logs backend-1 -n", "logs -n"},
		"MissingGlobal":   {"status --log-level", "--log-level"},
		"UnknownCommand":  {"frob x --y", "frob x --y"},
		"Help":            {"restart lb --help", "restart --help lb"},
		"Repeated":        {"up --remote-backend a:1 --remote-backend b:2", "up --remote-backend a:1 --remote-backend b:2"},
		"Stdin":           {"logs - -n 1", "logs -n 1 -"},
	} {
		t.Run(name, func(t *testing.T) {
			got := reorderArgs(app, append([]string{"posterctl"}, strings.Fields(tc.in)...))
			want := append([]string{"posterctl"}, strings.Fields(tc.want)...)
			if !slices.Equal(got, want) {
				t.Fatalf("reorderArgs(%q) = %q, want %q", tc.in, got[1:], want[1:])
			}
		})
	}
	for _, in := range [][]string{nil, {"posterctl"}} {
		if got := reorderArgs(app, in); !slices.Equal(got, in) {
			t.Errorf("reorderArgs(%q) = %q", in, got)
		}
	}
}

// The flags after PORT reach the backend's configuration.
func TestBackendFlagsAfterPort(t *testing.T) {
	var got *backendConfig
	app := &cli.App{
		Name:           "posterctl",
		Commands:       []*cli.Command{newBackendCommand(func(_ *cli.Context, cfg *backendConfig) error { got = cfg; return nil })},
		ExitErrHandler: func(*cli.Context, error) {},
		Writer:         io.Discard,
		ErrWriter:      io.Discard,
	}
	args := []string{"posterctl", "backend", "3001", "--db", "x.db", "--name", "b1"}
	if err := app.Run(reorderArgs(app, args)); err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Port != 3001 || got.DB != "x.db" || got.Name != "b1" {
		t.Fatalf("cfg = %+v", got)
	}
}

// An up flag after a stray argument is still read, so the argument alone is
// refused, by name.
func TestUpFlagsAfterArgument(t *testing.T) {
	app := &cli.App{
		Name:           "posterctl",
		Commands:       []*cli.Command{newUpCommand(func(*cli.Context, *upConfig) error { return nil })},
		ExitErrHandler: func(*cli.Context, error) {},
		Writer:         io.Discard,
		ErrWriter:      io.Discard,
	}
	err := app.Run(reorderArgs(app, []string{"posterctl", "up", "extra", "--backends", "3"}))
	if err == nil || !strings.Contains(err.Error(), `unexpected arguments ["extra"]`) {
		t.Fatalf("err = %v", err)
	}
}
