// Command posterctl runs the Poster web app as a cluster on one machine: a
// supervisor, a load balancer and N backends, all from this one binary.
package main

import (
	"os"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// version is stamped at build time with -ldflags "-X main.version=…".
var version = "dev"

func newApp() *cli.App {
	return &cli.App{
		Name:    "posterctl",
		Usage:   "run the Poster app as a supervised, load-balanced cluster on one machine",
		Version: version,
		Flags:   globalFlags(),
		Commands: []*cli.Command{
			upCommand(),
			statusCommand(),
			downCommand(),
			restartCommand(),
			scaleCommand(),
			logsCommand(),
			lbCommand(),
			backendCommand(),
		},
		// Exit codes are decided here in main, not deep inside urfave/cli.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

func main() {
	ignoreSIGPIPE()
	// Milliseconds in every log line's time; durations are logged as
	// strings with their unit ("1.5s").
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	app := withExitCodes(newApp())
	args := reorderArgs(app, os.Args)
	os.Exit(exitReport(app.Run(args), wantsJSON(app, args), os.Stdout, os.Stderr))
}
