package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/rs/zerolog"
)

// answerStats records, for every new connection, how long its answer took
// and what it was.
type answerStats struct {
	mu        sync.Mutex
	kills     []time.Time // a connection the killed process held may fail then
	excused   int
	n, n503   int
	slowest   time.Duration
	failures  []string
	retryless int
}

func (a *answerStats) killed(at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.kills = append(a.kills, at)
}

func (a *answerStats) record(begun time.Time, code int, hdr http.Header, body string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := time.Since(begun)
	a.n++
	a.slowest = max(a.slowest, d)
	// A connection the SIGKILLed process had accepted dies with it: reset
	// or EOF the moment of the kill, never a wait. Nothing can answer it.
	diedWith := func() bool {
		for _, k := range a.kills {
			if !k.Before(begun) && k.Before(begun.Add(d)) && d < 2*time.Second {
				return true
			}
		}
		return false
	}
	switch {
	case err != nil && diedWith():
		a.excused++
	case err != nil:
		near := time.Duration(1 << 61)
		for _, k := range a.kills {
			if begun.Sub(k).Abs() < near.Abs() {
				near = begun.Sub(k)
			}
		}
		a.failures = append(a.failures, fmt.Sprintf("%v (began %v from the nearest kill) at %s took %v", err, near, begun.Format("05.000"), d))
	case d > 2*time.Second:
		a.failures = append(a.failures, fmt.Sprintf("answer after %v", d))
	case code == http.StatusOK:
	case code == http.StatusServiceUnavailable && strings.Contains(body, `"load balancer restarting"`):
		a.n503++
		if hdr.Get("Retry-After") == "" {
			a.retryless++
		}
	default:
		a.failures = append(a.failures, fmt.Sprintf("%d %s", code, body))
	}
}

// hammer opens a new connection per request to each url until stop.
func hammer(urls []string, stats *answerStats, stop <-chan struct{}, wg *sync.WaitGroup) {
	for _, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			defer cl.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				begun := time.Now()
				resp, err := cl.Get(u)
				if err != nil {
					stats.record(begun, 0, nil, "", err)
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				stats.record(begun, resp.StatusCode, resp.Header, string(b), err)
			}
		}()
	}
}

// A front door that is killed every time it comes up, more often than the
// restart limit allows, is never given up; every connection meanwhile gets
// an answer within 2 s (the stand-in's 503 or the LB's own), status shows
// the crash loop, and `restart lb` brings it back at once.
func TestFrontDoorCrashLoop(t *testing.T) {
	port, hport := clitest.FreePort(t), clitest.FreePort(t)
	lb := Spec{
		Name: "lb", Path: fake("lb", "lb-fd", 0, 1).Path, Env: []string{helperEnv + "=lb-fd"},
		Port: port, Extra: []int{hport},
		Listen:   []string{fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", hport)},
		Handover: true, FrontDoor: true,
		ReadyURL: fmt.Sprintf("http://127.0.0.1:%d/health", port), Stage: 1,
	}
	s := newSupCfg(t, Config{Specs: []Spec{lb}, HealthURL: fmt.Sprintf("http://127.0.0.1:%d/health", hport)})
	s.cfg.Restart = RestartPolicy{MinBackoff: 50 * time.Millisecond, MaxBackoff: 2 * time.Second, ResetAfter: time.Minute, Limit: 2, Window: time.Minute}
	start(t, s)

	stats := &answerStats{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	hammer([]string{fmt.Sprintf("http://127.0.0.1:%d/", port), fmt.Sprintf("http://127.0.0.1:%d/health", hport)}, stats, stop, &wg)
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
			wg.Wait()
		}
	}()

	const kills = 5 // more than Limit within Window
	var lastPid int
	sawLoop := false
	for i := range kills {
		var pid int
		clitest.Eventually(t, 15*time.Second, func() error {
			c := childStatus(t, s, "lb")
			if c.State == Fatal {
				t.Fatalf("the front door was given up: %+v", c)
			}
			if strings.Contains(c.Reason, "crash loop") {
				sawLoop = true
			}
			if c.State != Running || c.Pid == lastPid {
				return fmt.Errorf("kill %d: lb %s, pid %d", i, c.State, c.Pid)
			}
			pid = c.Pid
			return nil
		})
		stats.killed(time.Now())
		if err := syscallKill(pid); err != nil {
			t.Fatal(err)
		}
		lastPid = pid
	}
	// Now in its longest backoff: status shows the loop and the stand-in
	// answers.
	clitest.Eventually(t, 5*time.Second, func() error {
		c := childStatus(t, s, "lb")
		if c.State != Backoff || !strings.Contains(c.Reason, "crash loop") || c.NextRetry == nil || c.Restarts < kills {
			return fmt.Errorf("after %d kills: %+v", kills, c)
		}
		return nil
	})
	sawLoop = true
	var out said
	if err := s.Restart("lb", 5*time.Second, out.say); err != nil {
		t.Fatalf("restart lb in a crash loop: %v", err)
	}
	if c := childStatus(t, s, "lb"); c.State != Running || c.Pid == lastPid || c.Reason != "" {
		t.Fatalf("after restart lb: %+v", c)
	}
	// Its own answers again, from the new generation.
	resp, err := http.Get(lb.ReadyURL)
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ PID int }
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil || h.PID != childStatus(t, s, "lb").Pid {
		t.Fatalf("health after restart: pid %d, err %v", h.PID, err)
	}
	close(stop)
	wg.Wait()
	stopped = true
	stats.mu.Lock()
	defer stats.mu.Unlock()
	t.Logf("%d connections, %d answered by the stand-in, %d cut by a kill of the process serving them, slowest answer %v",
		stats.n, stats.n503, stats.excused, stats.slowest)
	if len(stats.failures) > 0 || stats.retryless > 0 || stats.n503 == 0 || !sawLoop {
		t.Fatalf("%d of %d connections without a good answer (all: %q); %d 503 without Retry-After; %d 503s",
			len(stats.failures), stats.n, stats.failures, stats.retryless, stats.n503)
	}
}

// The stand-in keeps the health port's rules: a foreign Host is refused,
// and past the connection cap a connection gets a canned 503 at once.
func TestStandinLimits(t *testing.T) {
	port := clitest.FreePort(t)
	files, err := bindListeners(context.Background(), []string{fmt.Sprintf("127.0.0.1:%d", port)})
	if err != nil {
		t.Fatal(err)
	}
	defer closeFiles(files)
	var st atomic.Int64
	si := newStandin(files, port, func() time.Duration { st.Add(1); return 3 * time.Second }, zerolog.New(zerolog.NewTestWriter(t)))
	si.start()
	defer si.stop()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/health", port), nil)
	req.Host = "evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign Host: %d, want 403", resp.StatusCode)
	}
	resp, err = http.Get(fmt.Sprintf("http://localhost:%d/health", port))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("health: %d Retry-After %q, want 503 with 3", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	si.stop()
	if si.running() {
		t.Fatal("still running after stop")
	}
	// Stopping closed only the duplicate: the held socket still accepts
	// into its queue, for the next generation.
	si.start()
	resp, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after a restart of the stand-in: %d", resp.StatusCode)
	}
}

// Past the cap, a connection is answered at once instead of queueing.
func TestCapListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &capListener{Listener: l, max: 1}
	defer cl.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := cl.Accept() // the first; the second is turned away inside
		if err == nil {
			accepted <- c
		}
		close(accepted)
		_, _ = cl.Accept() // until Close
	}()
	first, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	held := <-accepted
	defer held.Close()
	second, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	_ = second.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(second)
	if !strings.HasPrefix(string(b), "HTTP/1.1 503") || !strings.Contains(string(b), restartingMsg) {
		t.Fatalf("over the cap: %q", b)
	}
	resp, err := http.ReadResponse(bufioReader(b), nil)
	if err != nil || resp.ContentLength != int64(len(`{"error":"load balancer restarting"}`)+1) {
		t.Fatalf("canned answer does not parse: %v", err)
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
