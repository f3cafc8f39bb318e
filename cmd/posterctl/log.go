package main

import (
	"fmt"
	"io"
	"os"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// Log settings are global flags so the supervisor can hand its own choice to
// every child through the environment.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "log-format",
			Usage:   "log format: auto (console on a terminal, JSON otherwise), console or json",
			Value:   "auto",
			EnvVars: []string{"POSTERCTL_LOG_FORMAT"},
		},
		&cli.StringFlag{
			Name:    "log-level",
			Usage:   "minimum log level: debug, info, warn or error",
			Value:   "info",
			EnvVars: []string{"POSTERCTL_LOG_LEVEL"},
		},
	}
}

// newLogger builds the one logger a command passes down; it writes to stderr.
func newLogger(c *cli.Context) (zerolog.Logger, error) {
	return buildLogger(os.Stderr, c.String("log-format"), c.String("log-level"))
}

// consoleTime is the time of a console log line, to the millisecond.
const consoleTime = "15:04:05.000"

func buildLogger(w io.Writer, format, level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", level)
	}
	switch format {
	case "auto":
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			w = zerolog.ConsoleWriter{Out: w, TimeFormat: consoleTime}
		}
	case "console":
		noColor := true
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			noColor = false
		}
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: consoleTime, NoColor: noColor}
	case "json":
	default:
		return zerolog.Nop(), fmt.Errorf("invalid --log-format %q: want auto, console or json", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}
