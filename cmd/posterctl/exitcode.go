package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

// The exit codes of every command, as the README's table gives them.
const (
	exitOK         = 0
	exitFailure    = 1
	exitUsage      = 2 // unknown flag or command, bad value, wrong arguments
	exitNotRunning = 3 // no cluster runs in the run dir
)

// withExitCodes makes every usage error exit 2 with one line: urfave/cli
// would print the whole help and exit 1 for an unknown flag, and 3 (our
// "no cluster running") for an unknown command.
func withExitCodes(app *cli.App) *cli.App {
	app.OnUsageError = usageError
	for _, c := range app.Commands {
		if c.OnUsageError == nil {
			c.OnUsageError = usageError
		}
	}
	// Our own help command: urfave/cli's exits 3 for an unknown topic.
	app.Commands = append(app.Commands, &cli.Command{
		Name:      "help",
		Aliases:   []string{"h"},
		Usage:     "show the commands, or one command's flags",
		ArgsUsage: "[COMMAND]",
		Action: func(c *cli.Context) error {
			name := c.Args().First()
			switch {
			case name == "":
				return cli.ShowAppHelp(c)
			case c.App.Command(name) == nil:
				return cli.Exit(fmt.Sprintf("help: unknown command %q (see posterctl --help)", name), exitUsage)
			}
			// From the app's context: help's own would look among its subcommands.
			return cli.ShowCommandHelp(c.Lineage()[1], name)
		},
	})
	// A bad log setting is a usage error for every command, not only for
	// those that log.
	app.Before = func(c *cli.Context) error {
		if _, err := buildLogger(io.Discard, c.String("log-format"), c.String("log-level")); err != nil {
			return cli.Exit(err.Error(), exitUsage)
		}
		return nil
	}
	app.Action = func(c *cli.Context) error {
		if c.NArg() > 0 {
			return cli.Exit(fmt.Sprintf("unknown command %q (see posterctl --help)", c.Args().First()), exitUsage)
		}
		return cli.ShowAppHelp(c)
	}
	return app
}

func usageError(c *cli.Context, err error, isSubcommand bool) error {
	help := "posterctl --help"
	if isSubcommand && c.Command != nil && c.Command.Name != "" {
		help = "posterctl " + c.Command.Name + " --help"
	}
	return cli.Exit(fmt.Sprintf("%v (see %s)", err, help), exitUsage)
}

// wantsJSON reports whether args (as reordered) run a command that has a
// --json flag with that flag given: its failures are JSON too.
func wantsJSON(app *cli.App, args []string) bool {
	for i, a := range args {
		if cmd := app.Command(a); cmd != nil {
			return newFlagTable(cmd.Flags).known("--json") && hasFlag(args[i+1:], "json")
		}
		if a == "--" {
			return false
		}
	}
	return false
}

// exitReport prints err, the outcome of a command, and returns the exit
// code: on stderr as one line, or on stdout as {"error": …} for a command
// run with --json.
func exitReport(err error, asJSON bool, stdout, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var coder cli.ExitCoder
	if errors.As(err, &coder) {
		code = coder.ExitCode()
	}
	msg := err.Error()
	switch {
	case msg == "":
	case asJSON:
		b, _ := json.Marshal(struct {
			Error string `json:"error"`
		}{msg})
		fmt.Fprintf(stdout, "%s\n", b)
	default:
		fmt.Fprintln(stderr, "posterctl:", msg)
	}
	return code
}
