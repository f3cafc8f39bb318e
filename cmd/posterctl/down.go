package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/posterctl/posterctl/supervisor"
	"github.com/urfave/cli/v2"
)

func downCommand() *cli.Command {
	var runDir string
	var grace time.Duration
	return &cli.Command{
		Name:  "down",
		Usage: "stop the cluster gracefully (LB first, then backends) and wait until every child is gone",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "grace", Value: 10 * time.Second, Usage: "how long children may drain before SIGKILL", Destination: &grace},
			runDirFlag(&runDir),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return cli.Exit(fmt.Sprintf("down: unexpected arguments %q", c.Args().Slice()), 2)
			}
			if grace < 0 {
				return cli.Exit(fmt.Sprintf("down: invalid --grace %v: want 0 or more", grace), 2)
			}
			if err := trustRunDir("down", runDir); err != nil {
				return err
			}
			msg, err := down(c.Context, runDir, grace)
			if err != nil {
				return cli.Exit("down: "+err.Error(), 1)
			}
			fmt.Fprintln(c.App.Writer, msg)
			return nil
		},
	}
}

// settle is how long a supervisor may take past the grace period to reap
// its children and remove its socket.
const settle = 10 * time.Second

func down(ctx context.Context, runDir string, grace time.Duration) (string, error) {
	cl := supervisor.NewClient(runDir)
	defer cl.CloseIdleConnections()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	st, err := cl.Status(sctx)
	cancel()
	if errors.Is(err, supervisor.ErrNotRunning) {
		return downByPidFile(ctx, runDir, grace)
	}
	if err != nil {
		return "", err
	}
	sup := supervisor.Identity{Pid: st.Supervisor.Pid, CreateTime: st.Supervisor.CreateTime}
	dctx, cancel := context.WithTimeout(ctx, grace+settle)
	defer cancel()
	if err := cl.Down(dctx, grace); err != nil && sup.Alive(ctx) {
		return "", err
	}
	// The reply comes once every child is gone; the supervisor then removes
	// its socket and exits, which is what down promises to wait for.
	wctx, cancel := context.WithTimeout(ctx, settle)
	defer cancel()
	if err := sup.WaitGone(wctx); err != nil {
		return "", fmt.Errorf("children stopped but the supervisor did not exit: %w", err)
	}
	return fmt.Sprintf("cluster stopped (supervisor pid %d, %d children)", sup.Pid, len(st.Children)), nil
}

// downByPidFile handles a supervisor whose socket is gone or dead: the pid
// file names it, and it is signalled only if pid, create time and name match.
func downByPidFile(ctx context.Context, runDir string, grace time.Duration) (string, error) {
	id, err := supervisor.SignalFromPidFile(ctx, runDir, syscall.SIGTERM)
	if err != nil {
		return "", err
	}
	if id.Pid == 0 {
		_ = supervisor.CleanStale(runDir)
		return fmt.Sprintf("no cluster is running (run dir %s)", runDir), nil
	}
	wctx, cancel := context.WithTimeout(ctx, grace+settle)
	defer cancel()
	if err := id.WaitGone(wctx); err != nil {
		// Its children die with it (parent-death signal).
		_ = id.Signal(ctx, syscall.SIGKILL)
		kctx, cancel := context.WithTimeout(ctx, settle)
		defer cancel()
		if err := id.WaitGone(kctx); err != nil {
			return "", err
		}
	}
	_ = supervisor.CleanStale(runDir)
	return fmt.Sprintf("cluster stopped (supervisor pid %d, found by its pid file; its socket did not answer)", id.Pid), nil
}
