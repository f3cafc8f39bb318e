package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
)

// kaLoad is traffic through the LB over 16 kept-alive connections that never
// retry (a raw net.Conn each: net/http's Transport would silently re-send a
// GET whose reused connection failed, hiding the losses this counts).
// Half the connections send GETs, half plain POSTs; a connection is dialled
// again only after an answer that said Connection: close, or a failure.
type kaLoad struct {
	gets, posts, failed, reconnects atomic.Int64
	slowGet, slowPost               atomic.Int64 // nanoseconds
	posts504                        atomic.Int64
	// accept504 counts a plain POST's 504 within 2 s as an answer: what a
	// POST caught on a hung backend gets.
	accept504 bool
	firstErr  atomic.Value
	stop      chan struct{}
	wg        sync.WaitGroup
}

const kaConns = 16

func startKeepAliveLoad(t *testing.T, c *cluster) *kaLoad {
	return startKeepAliveLoadOpts(t, c, false)
}

func startKeepAliveLoadOpts(t *testing.T, c *cluster, accept504 bool) *kaLoad {
	t.Helper()
	cookie := registerAndLogin(t, noRetryClient(), c.url(""), fmt.Sprintf("ka%d", time.Now().UnixNano()%1e9))
	addr := fmt.Sprintf("127.0.0.1:%d", c.port)
	l := &kaLoad{stop: make(chan struct{}), accept504: accept504}
	for i := range kaConns {
		post := i%2 == 1
		count, slowest := &l.gets, &l.slowGet
		if post {
			count, slowest = &l.posts, &l.slowPost
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			var (
				conn net.Conn
				br   *bufio.Reader
			)
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				if conn == nil {
					var err error
					if conn, err = net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
						l.fail(fmt.Errorf("dial: %w", err))
						continue
					}
					br = bufio.NewReader(conn)
					l.reconnects.Add(1)
				}
				begun := time.Now()
				closed, err := kaRequest(conn, br, addr, post, cookie, n)
				took := time.Since(begun)
				storeMax(slowest, int64(took))
				var gw *gatewayTimeout
				if post && l.accept504 && errors.As(err, &gw) && took <= 2*time.Second {
					l.posts504.Add(1)
					err = nil
				}
				if err != nil {
					l.fail(err)
					conn.Close()
					conn = nil
					continue
				}
				count.Add(1)
				if closed {
					conn.Close()
					conn = nil
				}
			}
		}()
	}
	t.Cleanup(l.halt)
	clitest.Eventually(t, 10*time.Second, func() error {
		if l.gets.Load() < 50 || l.posts.Load() < 50 {
			return fmt.Errorf("load not flowing: %d GETs %d POSTs, %d failed (%v)", l.gets.Load(), l.posts.Load(), l.failed.Load(), l.firstErr.Load())
		}
		return nil
	})
	return l
}

// kaRequest sends one request on conn and reads its answer; closed says the
// answer asked for the connection to be closed.
func kaRequest(conn net.Conn, br *bufio.Reader, addr string, post bool, cookie *http.Cookie, n int) (closed bool, err error) {
	var req *http.Request
	want := 200
	if post {
		req, _ = http.NewRequest("POST", "http://"+addr+"/api/posts", strings.NewReader(fmt.Sprintf(`{"content":"kept alive %d"}`, n)))
		req.Header.Set("Content-Type", "application/json")
		req.AddCookie(cookie)
		want = 201
	} else {
		req, _ = http.NewRequest("GET", "http://"+addr+"/api/posts?limit=5", nil)
	}
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return false, err
	}
	if err := req.Write(conn); err != nil {
		return false, fmt.Errorf("%s: write: %w", req.Method, err)
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return false, fmt.Errorf("%s: read: %w", req.Method, err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, fmt.Errorf("%s: read body: %w", req.Method, err)
	}
	if resp.StatusCode == http.StatusGatewayTimeout {
		return resp.Close, &gatewayTimeout{}
	}
	if resp.StatusCode != want {
		return false, fmt.Errorf("%s: status %d", req.Method, resp.StatusCode)
	}
	return resp.Close, nil
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// gatewayTimeout is a 504 answer.
type gatewayTimeout struct{}

func (*gatewayTimeout) Error() string { return "status 504" }

func (l *kaLoad) fail(err error) {
	l.failed.Add(1)
	l.firstErr.CompareAndSwap(nil, err.Error())
}

func (l *kaLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// check lets the load run on until 200 more requests have been answered,
// so that it spans the tail of the operation (an old LB draining after
// the command returned), then stops it and fails the test on any failed
// request.
func (l *kaLoad) check(t *testing.T, what string, took time.Duration) {
	t.Helper()
	target := l.gets.Load() + l.posts.Load() + 200
	clitest.Eventually(t, 20*time.Second, func() error {
		if n := l.gets.Load() + l.posts.Load(); n < target {
			return fmt.Errorf("%d requests answered, want %d", n, target)
		}
		return nil
	})
	l.halt()
	n := l.gets.Load() + l.posts.Load()
	if f := l.failed.Load(); f != 0 {
		t.Fatalf("%s: %d of %d requests on kept-alive connections failed; first: %v", what, f, f+n, l.firstErr.Load())
	}
	t.Logf("measured: %s took %v; %d requests (%d GETs, %d plain POSTs) on %d kept-alive connections (%d connections opened in all), none failed",
		what, took.Round(time.Millisecond), n, l.gets.Load(), l.posts.Load(), kaConns, l.reconnects.Load())
}

func TestRestartLBUnderKeepAliveLoad(t *testing.T) {
	c := newCluster(t)
	c.up(startLimit, "--grace", "5s")
	for i := range 3 {
		l := startKeepAliveLoad(t, c)
		_, took := c.ctl("restart", "lb")
		l.check(t, fmt.Sprintf("restart lb #%d", i+1), took)
	}
}

func TestRestartBackendsUnderKeepAliveLoad(t *testing.T) {
	c := newCluster(t)
	c.up(startLimit, "--grace", "5s")
	l := startKeepAliveLoad(t, c)
	_, took := c.ctl("restart")
	l.check(t, "restart of every backend", took)
}

func TestScaleUnderKeepAliveLoad(t *testing.T) {
	c := newCluster(t)
	c.up(startLimit, "--grace", "5s")
	l := startKeepAliveLoad(t, c)
	_, took := c.ctl("scale", "4")
	l.check(t, "scale 2 to 4", took)
	l = startKeepAliveLoad(t, c)
	_, took = c.ctl("scale", "1")
	l.check(t, "scale 4 to 1", took)
}
