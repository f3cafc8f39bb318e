package proxy

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
)

// helperBody is the fixed answer of a helper backend.
const helperBody = `{"id":1,"content":"hello","author":"poster"}`

// runHelperBackend is the test binary running as a backend child: GET answers
// a fixed small JSON body; POST first writes "recv <X-Request-Id>" to stdout,
// so the parent knows which requests reached this process before it died.
func runHelperBackend(addr string) int {
	name := os.Getenv("POSTERCTL_PROXY_HELPER_NAME")
	// A slow helper spends this long on every request but /healthz, as a
	// backend busy hashing passwords does: slow, not hung.
	slow, _ := time.ParseDuration(os.Getenv("POSTERCTL_PROXY_HELPER_SLOW"))
	body := []byte(helperBody)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if slow > 0 {
			time.Sleep(slow)
		}
		if r.Method == http.MethodPost {
			os.Stdout.WriteString("recv " + r.Header.Get("X-Request-Id") + "\n")
			io.Copy(io.Discard, r.Body)
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["X-Backend"] = []string{name}
		w.Write(body)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		os.Stderr.WriteString("helper backend: " + err.Error() + "\n")
		return 1
	}
	os.Stdout.WriteString("listening\n")
	srv := &http.Server{Handler: mux, IdleTimeout: 120 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return 1
	}
	return 0
}

// startHelperBackend re-runs the test binary as a backend listening on addr
// and waits until it accepts connections; env is added to its environment.
func startHelperBackend(tb testing.TB, addr, name string, env ...string) *clitest.Process {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+addr, "POSTERCTL_PROXY_HELPER_NAME="+name)
	cmd.Env = append(cmd.Env, env...)
	p := clitest.StartCmd(tb, cmd)
	clitest.Eventually(tb, 10*time.Second, func() error {
		select {
		case <-p.Done():
			tb.Fatalf("helper backend exited: %s", p.Output())
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return p
}
