package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
	"go.uber.org/goleak"
)

// bin is the posterctl binary under test, built once in TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	path, cleanup, err := clitest.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	bin = path
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}

// backend is a running `posterctl backend` process.
type backend struct {
	*clitest.Process
	name string
	port int
	url  string
}

// startBackend runs a backend on a free port with the given database and
// waits until its health check answers.
func startBackend(tb testing.TB, db, name string, extra ...string) *backend {
	tb.Helper()
	return startBackendBin(tb, bin, db, name, extra...)
}

func waitHealthy(tb testing.TB, b *backend) {
	tb.Helper()
	c := &http.Client{Timeout: time.Second}
	defer c.CloseIdleConnections()
	clitest.Eventually(tb, 30*time.Second, func() error {
		select {
		case <-b.Done():
			tb.Fatalf("%s exited during start-up:\n%s", b.name, b.Output())
		default:
		}
		resp, err := c.Get(b.url + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz = %d", resp.StatusCode)
		}
		return nil
	})
}

func dbPath(tb testing.TB) string { return filepath.Join(tb.TempDir(), "data", "poster.db") }

// client is a test HTTP client that keeps enough idle connections for its
// concurrency and carries one session cookie by hand (a cookie jar would
// share it across ports anyway, which would hide what the test shows).
type client struct {
	tb     testing.TB
	hc     *http.Client
	cookie string
}

func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) decode(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		tb.Fatalf("decode %q: %v", r.body, err)
	}
}

// do sends one request; a transport error is returned, not fatal, so that
// concurrent callers can report it.
func (c *client) do(method, url string, body any, hdr ...string) (reply, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return reply{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return reply{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cookie != "" {
		req.Header.Set("Cookie", c.cookie)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{resp.StatusCode, resp.Header, b}, nil
}

func (c *client) must(method, url string, body any, want int, hdr ...string) reply {
	c.tb.Helper()
	r, err := c.do(method, url, body, hdr...)
	if err != nil {
		c.tb.Fatalf("%s %s: %v", method, url, err)
	}
	if r.status != want {
		c.tb.Fatalf("%s %s = %d, want %d: %s", method, url, r.status, want, r.body)
	}
	return r
}

// registerAndLogin creates user name through base and keeps the session
// cookie it gets.
func (c *client) registerAndLogin(base, name, password string) {
	c.tb.Helper()
	creds := map[string]string{"username": name, "password": password}
	c.must("POST", base+"/api/register", creds, http.StatusCreated)
	c.login(base, name, password)
}

// login logs in through base and keeps the session cookie. It may run in a
// goroutine other than the test's: it reports with Errorf, not Fatalf.
func (c *client) login(base, name, password string) {
	creds := map[string]string{"username": name, "password": password}
	r, err := c.do("POST", base+"/api/login", creds)
	if err != nil || r.status != http.StatusOK {
		c.tb.Errorf("login %s through %s: %v %d %s", name, base, err, r.status, r.body)
		return
	}
	for _, ck := range (&http.Response{Header: r.header}).Cookies() {
		if ck.Name == "poster_session" {
			c.cookie = ck.Name + "=" + ck.Value
		}
	}
	if c.cookie == "" {
		c.tb.Errorf("login gave no session cookie: %v", r.header)
	}
}
