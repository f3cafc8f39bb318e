package main

import (
	"slices"
	"strconv"

	"github.com/urfave/cli/v2"
)

// reorderArgs moves every flag ahead of the positional arguments, so that
// `restart lb --run-dir X` means what it says: urfave/cli v2 stops reading
// flags at the first positional argument. Which flags take a value comes
// from the real flag definitions, so `logs -n 5 backend-1` keeps 5 with -n.
// A global flag (--log-level) given after the command moves before it.
// Everything after `--` stays as it is, behind the `--`. Unknown flags stay
// flags, for urfave/cli to refuse as usage errors. args[0] is the program.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	global := newFlagTable(app.Flags)
	if !app.HideHelp {
		global.add(cli.HelpFlag)
	}
	if !app.HideVersion {
		global.add(cli.VersionFlag)
	}
	out := []string{args[0]}
	rest := args[1:]
	// Global flags before the command name.
	for len(rest) > 0 && isFlag(rest[0]) && rest[0] != "--" {
		n := global.span(rest)
		out = append(out, rest[:n]...)
		rest = rest[n:]
	}
	if len(rest) == 0 || rest[0] == "--" {
		return append(out, rest...)
	}
	cmd := app.Command(rest[0])
	if cmd == nil || cmd.SkipFlagParsing || len(cmd.Subcommands) > 0 {
		return append(out, rest...)
	}
	local := newFlagTable(cmd.Flags)
	if !cmd.HideHelp && !app.HideHelp {
		local.add(cli.HelpFlag)
	}
	name, rest := rest[0], rest[1:]
	var globals, flags, positional, tail []string
	for len(rest) > 0 {
		a := rest[0]
		switch {
		case a == "--":
			tail, rest = rest, nil
		case isFlag(a) && !isNumber(a, local):
			n := local.span(rest)
			if !local.known(a) {
				if global.known(a) {
					n = global.span(rest)
					globals = append(globals, rest[:n]...)
					rest = rest[n:]
					if n == 1 && len(rest) == 0 && global.lacksValue(a) {
						return append(out, globals...) // as above
					}
					continue
				}
			}
			flags = append(flags, rest[:n]...)
			rest = rest[n:]
			if n == 1 && len(rest) == 0 && local.lacksValue(a) {
				// The flag package would take a moved argument for its
				// value; with none, it says the value is missing.
				return append(append(append(out, globals...), name), flags...)
			}
		default:
			positional = append(positional, a)
			rest = rest[1:]
		}
	}
	out = append(out, globals...)
	out = append(out, name)
	out = append(out, flags...)
	if len(tail) == 0 && !slices.ContainsFunc(positional, isFlag) {
		return append(out, positional...)
	}
	// One `--` ahead of every positional, so that `scale -1` stays an
	// argument and the `--` section keeps its place after the others.
	out = append(append(out, "--"), positional...)
	if len(tail) > 0 {
		out = append(out, tail[1:]...)
	}
	return out
}

// flagTable maps every name of every flag (without dashes) to whether the
// flag takes a value in the next argument.
type flagTable map[string]bool

func newFlagTable(flags []cli.Flag) flagTable { return takesValue(flags) }

func (t flagTable) add(f cli.Flag) {
	for n, v := range takesValue([]cli.Flag{f}) {
		t[n] = v
	}
}

// known reports whether a (a flag argument) names one of the table's flags.
func (t flagTable) known(a string) bool {
	name, _, _ := flagName(a)
	_, ok := t[name]
	return ok
}

// span is how many arguments the flag at args[0] uses: itself, and its
// value when it takes one that is not given with `=`.
func (t flagTable) span(args []string) int {
	name, inline, _ := flagName(args[0])
	if !inline && t[name] && len(args) > 1 {
		return 2
	}
	return 1
}

// lacksValue reports whether a, the last argument, is a flag that takes a
// value in the next one.
func (t flagTable) lacksValue(a string) bool {
	name, inline, _ := flagName(a)
	return !inline && t[name]
}

// isFlag is what Go's flag package takes for a flag: a lone "-" is an
// argument (conventionally stdin).
func isFlag(a string) bool { return len(a) > 1 && a[0] == '-' }

// isNumber keeps `scale -1` a (bad) number rather than an unknown flag.
func isNumber(a string, t flagTable) bool {
	if t.known(a) {
		return false
	}
	_, err := strconv.Atoi(a)
	return err == nil
}

// hasFlag reports whether args (before any `--`) give one of the names.
func hasFlag(args []string, names ...string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if name, _, ok := flagName(a); ok && slices.Contains(names, name) {
			return true
		}
	}
	return false
}
