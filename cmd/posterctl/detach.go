package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/posterctl/posterctl/supervisor"
	"github.com/urfave/cli/v2"
)

// readyFDEnv tells a detached supervisor which inherited fd to report its
// start-up outcome on; the `up -d` that started it waits for that one line.
const readyFDEnv = "POSTERCTL_READY_FD"

// The flags the detach protocol rewrites on the forwarded command line.
const (
	detachFlag    = "detach"
	detachAlias   = "d"
	superviseFlag = "supervise"
	dbFlag        = "db"
)

// supervisorArgs is the detached supervisor's command line: the user's own
// (args, without the program name), so that every up flag reaches it as
// given, with the detach flag taken out in any form (-d, --detach,
// --detach=true), --supervise added after `up`, and --db taken out, because
// the store goes through the environment: argv is readable by every local
// user and a PostgreSQL URL may carry a password.
func supervisorArgs(args []string) ([]string, error) {
	global := takesValue(globalFlags())
	up := takesValue(upFlags(&upConfig{}))
	var out []string
	i := 0
	for ; i < len(args); i++ {
		name, inline, isFlag := flagName(args[i])
		if !isFlag {
			break
		}
		out = append(out, args[i])
		if !inline && global[name] && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	if i == len(args) || args[i] != "up" {
		return nil, fmt.Errorf("cannot find the up command in %q", args)
	}
	out = append(out, "up", "--"+superviseFlag)
	for i++; i < len(args); i++ {
		a := args[i]
		name, inline, isFlag := flagName(a)
		if !isFlag { // "--" or an argument: the rest is not flags
			out = append(out, args[i:]...)
			break
		}
		value := !inline && up[name] && i+1 < len(args)
		switch name {
		case detachFlag, detachAlias:
			continue // a bool flag never takes the next argument
		case dbFlag:
			if value {
				i++
			}
			continue
		}
		out = append(out, a)
		if value {
			i++
			out = append(out, args[i])
		}
	}
	return out, nil
}

// flagName parses one argument as Go's flag package does: -name, --name,
// -name=value or --name=value. "-", "--" and anything without a dash are
// not flags.
func flagName(a string) (name string, inline, isFlag bool) {
	if len(a) < 2 || a[0] != '-' || a == "--" {
		return "", false, false
	}
	name = strings.TrimPrefix(a[1:], "-")
	name, _, inline = strings.Cut(name, "=")
	return name, inline, true
}

// takesValue maps every name and alias of flags to whether the flag
// consumes the next argument (all but bool flags).
func takesValue(flags []cli.Flag) map[string]bool {
	out := map[string]bool{}
	for _, f := range flags {
		tv := true
		if d, ok := f.(cli.DocGenerationFlag); ok {
			tv = d.TakesValue()
		}
		for _, n := range f.Names() {
			out[n] = tv
		}
	}
	return out
}

// startReport is the one line a detached supervisor sends back to `up -d`.
type startReport struct {
	OK      bool   `json:"ok"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// readyReporter returns the function that sends the start-up outcome to
// the waiting `up -d`; it does nothing in the foreground, and only the first
// call counts.
func readyReporter(detached bool) func(startReport) {
	fd, err := strconv.Atoi(os.Getenv(readyFDEnv))
	if !detached || err != nil {
		return func(startReport) {}
	}
	os.Unsetenv(readyFDEnv) // not for the children
	// Without this every child would hold the pipe open too.
	closeOnExec(fd)
	f := os.NewFile(uintptr(fd), "ready")
	return func(r startReport) {
		if f == nil {
			return
		}
		_ = json.NewEncoder(f).Encode(r)
		f.Close()
		f = nil
	}
}

// detach starts this binary again as the supervisor, with the user's
// arguments (see supervisorArgs), in a new session with its output in
// <run-dir>/logs/supervisor.log, and waits for its report.
func detach(c *cli.Context, cfg *upConfig, userArgs []string) error {
	args, err := supervisorArgs(userArgs)
	if err != nil {
		return cli.Exit("up: "+err.Error(), 1)
	}
	exe, err := os.Executable()
	if err != nil {
		return cli.Exit("up: find own executable: "+err.Error(), 1)
	}
	runDir, err := filepath.Abs(cfg.RunDir)
	if err != nil {
		return cli.Exit("up: "+err.Error(), 2)
	}
	if err := supervisor.PrepareRunDir(runDir); err != nil {
		return cli.Exit("up: "+err.Error(), 1)
	}
	logDir := filepath.Join(runDir, supervisor.LogsDir)
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return cli.Exit("up: run dir: "+err.Error(), 1)
	}
	logPath := filepath.Join(logDir, "supervisor.log")
	// Each run starts its log afresh; the last run's is kept rotated. Not
	// the log of a cluster still running here: this up is refused then.
	if supervisor.Precheck(c.Context, supervisor.Config{RunDir: runDir}) == nil {
		if err := supervisor.RotateLog(logPath, cfg.logRotation()); err != nil {
			return cli.Exit("up: "+err.Error(), 1)
		}
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return cli.Exit("up: supervisor log: "+err.Error(), 1)
	}
	defer logFile.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return cli.Exit("up: "+err.Error(), 1)
	}
	defer r.Close()

	cmd := exec.Command(exe, args...)
	// The store as this process resolved it (flag, environment or config
	// file), through the environment like the backends get it.
	cmd.Env = append(os.Environ(), readyFDEnv+"=3", "POSTERCTL_DB="+cfg.DB)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := newSession(cmd); err != nil {
		return cli.Exit("up: "+err.Error(), 1)
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return cli.Exit("up: start supervisor: "+err.Error(), 1)
	}
	var rep startReport
	line, readErr := bufio.NewReader(r).ReadBytes('\n')
	if readErr == nil || len(line) > 0 {
		readErr = json.Unmarshal(line, &rep)
	}
	if readErr == nil && rep.OK {
		fmt.Fprintln(c.App.Writer, rep.Message)
		fmt.Fprintf(c.App.Writer, "logs in %s; stop with: posterctl down --run-dir %s\n", logDir, runDir)
		return cmd.Process.Release()
	}
	// On failure the supervisor stops everything and exits; wait for it so
	// that nothing runs on once we return.
	_ = cmd.Wait()
	if readErr == nil && rep.Error != "" {
		code := 1
		if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() > 1 {
			code = cmd.ProcessState.ExitCode()
		}
		return cli.Exit(rep.Error, code)
	}
	return cli.Exit(fmt.Sprintf("up: the supervisor exited (%v) before reporting; last lines of %s:\n%s",
		cmd.ProcessState, logPath, indent(fileTail(logPath, 10))), 1)
}

// fileTail returns the last n lines of the supervisor's own log, for a
// supervisor that died before it could report why.
func fileTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
