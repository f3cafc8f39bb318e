package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

// The test binary doubles as every fake child, as in Go's os/exec tests:
// with helperEnv set, TestMain acts out that role instead of running tests.
const (
	helperEnv     = "POSTERCTL_SUPERVISOR_HELPER"
	helperPortEnv = "POSTERCTL_SUPERVISOR_HELPER_PORT"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode))
	}
	// lumberjack's goroutine that removes old rotated files has no stop;
	// it lives as long as the process (see FileSink).
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"))
}

func helper(mode string) int {
	port := os.Getenv(helperPortEnv)
	switch mode {
	case "serve":
		return serveHealthz(port, true)
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		return serveHealthz(port, false)
	case "block":
		_, _ = io.Copy(io.Discard, os.Stdin) // until the test closes our stdin
		return 0
	case "spin":
		for {
			if _, err := os.Stdin.Stat(); err != nil {
				return 1
			}
		}
	case "lb-fd":
		return serveInherited()
	case "unready":
		return serveStatus(port, http.StatusServiceUnavailable)
	case "degraded":
		// Ready, but its /healthz says why it is not plainly healthy.
		return serveBody(port, `{"status":"degraded","reason":"the disk is full: writes get 507"}`)
	case "exit1":
		fmt.Println("opening store: unable to open database file")
		return 1
	case "exit1-varied":
		// Fails differently each time: only the restart limit stops it.
		fmt.Printf("opening store: unable to open database file (pid %d)\n", os.Getpid())
		return 1
	case "wrapper":
		// Like `sh -c` or npm: the port is held by a grandchild, which a
		// signal to the leader alone would not reach.
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"=serve")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Printf("grandchild %d\n", cmd.Process.Pid)
		_ = cmd.Wait()
		return 0
	}
	fmt.Println("unknown helper mode", mode)
	return 2
}

func serveHealthz(port string, graceful bool) int {
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("listening on", l.Addr())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"ok"}`))
	})}
	if graceful {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		go func() {
			<-ctx.Done()
			fmt.Println("draining")
			srv.Shutdown(context.Background())
		}()
	}
	if err := srv.Serve(l); err != http.ErrServerClosed {
		fmt.Println(err)
		return 1
	}
	return 0
}

// serveStatus answers every request with code until killed.
func serveStatus(port string, code int) int {
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("listening, never ready")
	_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }))
	return 1
}

// serveInherited is a fake LB generation: it serves /health with its pid on
// the listening socket inherited as fd 3, and drains on SIGTERM.
func serveInherited() int {
	l, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("serving on inherited", l.Addr())
	// A second inherited socket (a health port) is served alike, so that
	// no connection to it waits on a live generation.
	if l2, err := net.FileListener(os.NewFile(4, "health")); err == nil {
		go func() {
			_ = http.Serve(l2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"status":"ok"}`)) }))
		}()
	}
	var conns sync.WaitGroup
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"status":"ok","pid":%d}`, os.Getpid())
	}), ConnState: func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			conns.Done()
		}
	}}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		// Closing the listener ourselves, not through Shutdown: a
		// connection Accept already returned is then tracked and served,
		// where Shutdown racing with Accept would drop it.
		l.Close()
	}()
	if err := srv.Serve(l); !errors.Is(err, net.ErrClosed) {
		fmt.Println(err)
		return 1
	}
	fmt.Println("draining")
	conns.Wait()
	fmt.Println("drained")
	return 0
}

// serveBody answers every request 200 with body until killed.
func serveBody(port, body string) int {
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) }))
	return 1
}
