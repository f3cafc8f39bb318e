package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Spec describes one child: what to run and how to tell it is ready.
type Spec struct {
	Name string
	Path string   // executable; the supervisor passes os.Executable()
	Args []string // without the program name
	Env  []string // added to the supervisor's environment
	Port int      // the port status shows; checked free before each start
	// Unset names variables of the supervisor's environment the child must
	// not inherit (the LB gets no POSTERCTL_DB, which may hold a password).
	Unset []string
	// Addr is the backend's address as the LB knows it (host:port); status
	// takes the child's health from the LB's entry for it. Empty for a
	// child the LB does not balance over.
	Addr     string
	Extra    []int  // more ports the child listens on (the LB's health port)
	ReadyURL string // GET answering 200 means ready
	Stage    int    // lower stages start first and stop last
	// Listen are addresses the supervisor binds at start-up and keeps for
	// the cluster's life; the child gets them as fds 3, 4, … in this order.
	// Their ports are not checked or awaited like Port and Extra: they are
	// ours.
	Listen []string
	// Handover makes a restart start the new process beside the old one
	// (on the shared Listen sockets) and stop the old one only once the
	// new one is ready. The ready URL must then answer JSON with the "pid"
	// of the process that answered, as the LB's /health does, so the new
	// process can be told from the old.
	Handover bool
	// FrontDoor marks the child that serves the public sockets (the LB). It
	// is never given up for good, and while no process of it serves, the
	// supervisor's stand-in answers 503 on its Listen sockets, so clients
	// never connect to a socket that nobody accepts from.
	FrontDoor bool
}

// LineSink receives each line a child writes to stdout or stderr.
type LineSink interface {
	Line(name string, line []byte)
}

// Process owns exactly one started child: one waiter goroutine reaps it and
// one reader goroutine drains its output, so a full pipe never blocks it.
type Process struct {
	spec    Spec
	cmd     *exec.Cmd
	id      Identity
	started time.Time

	done       chan struct{} // closed once the child is reaped
	readerDone chan struct{}
	state      *os.ProcessState // set before done is closed
	waitErr    error
}

// startProcess starts spec in its own process group through sp.
func startProcess(sp *spawner, spec Spec, sink LineSink, files []*os.File) (*Process, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: pipe: %w", spec.Name, err)
	}
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = append(withoutVars(os.Environ(), spec.Unset), spec.Env...)
	// One pipe for both streams keeps a child's lines in the order written.
	cmd.Stdout, cmd.Stderr = w, w
	if cmd.SysProcAttr, err = childAttr(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	cmd.ExtraFiles = files
	err = sp.start(cmd)
	w.Close() // the child has its own copy; ours would keep the reader from EOF
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	p := &Process{
		spec:       spec,
		cmd:        cmd,
		started:    time.Now(),
		done:       make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	// Identity from gopsutil can fail for a child that died at once; the pid
	// alone still lets Stop signal the group, and Alive then reports false.
	p.id, _ = Identify(context.Background(), cmd.Process.Pid)
	if p.id.Pid == 0 {
		p.id.Pid = cmd.Process.Pid
	}
	go p.read(r, sink)
	go p.wait()
	return p, nil
}

func (p *Process) wait() {
	p.waitErr = p.cmd.Wait()
	p.state = p.cmd.ProcessState
	// Whatever the leader left behind in its group (a grandchild holding the
	// port, say) goes with it.
	_ = signalGroup(p.cmd.Process.Pid, syscall.SIGKILL)
	close(p.done)
}

func (p *Process) read(r *os.File, sink LineSink) {
	defer close(p.readerDone)
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	// The lines of one read go to the sink together (see LinesSink): a
	// child that batches its own writes, as the LB does, costs a write here
	// per batch rather than per line.
	var batch [][]byte
	for {
		// ReadLine hands over an over-long line in pieces instead of failing.
		line, _, err := br.ReadLine()
		if len(line) > 0 || err == nil {
			batch = append(batch, line)
		}
		if err != nil || !lineBuffered(br) {
			sinkLines(sink, p.spec.Name, batch)
			batch = batch[:0]
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				sink.Line(p.spec.Name, []byte("posterctl: reading output: "+err.Error()))
			}
			return
		}
	}
}

// Pid is the child's pid, which is also its process group id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Identity is the child's pid and create time.
func (p *Process) Identity() Identity { return p.id }

// Started is when the child was started.
func (p *Process) Started() time.Time { return p.started }

// Done is closed when the child has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitStatus describes how the child ended ("exit 1", "signal killed"); it
// is empty while the child runs.
func (p *Process) ExitStatus() string {
	select {
	case <-p.done:
	default:
		return ""
	}
	return describeExit(p.state, p.waitErr)
}

func describeExit(st *os.ProcessState, err error) string {
	if st == nil {
		if err != nil {
			return err.Error()
		}
		return "unknown"
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	return fmt.Sprintf("exit %d", st.ExitCode())
}

// Stop asks the child's process group to stop with SIGTERM and waits for it;
// when ctx ends first the group gets SIGKILL. It is safe to call more than
// once and from several goroutines. exec.Cmd's Cancel and WaitDelay are not
// used: WaitDelay's force-kill reaches only the leader, not the group, and
// the grace period belongs to the stop, not to the command.
func (p *Process) Stop(ctx context.Context) {
	select {
	case <-p.done:
	default:
		_ = signalGroup(p.Pid(), syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		_ = signalGroup(p.Pid(), syscall.SIGKILL)
		<-p.done
	}
	<-p.readerDone
}

// Kill sends SIGKILL to the child's process group and waits until the child
// is reaped.
func (p *Process) Kill() {
	select {
	case <-p.done:
	default:
		_ = signalGroup(p.Pid(), syscall.SIGKILL)
		<-p.done
	}
	<-p.readerDone
}

// withoutVars is env without the variables named in names.
func withoutVars(env, names []string) []string {
	if len(names) == 0 {
		return env
	}
	return slices.DeleteFunc(env, func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(names, name)
	})
}
