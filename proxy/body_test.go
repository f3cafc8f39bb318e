package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBufferedBodyArrivals: a body kept for replay reaches the backend
// whole however it arrives: with its header, after it, in pieces, or larger
// than what the server reads with the header. The requests share one
// connection, so a reused body buffer that kept a byte of an earlier body
// shows as a wrong echo.
func TestBufferedBodyArrivals(t *testing.T) {
	be := testBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Write(body)
	})
	lb, _ := startLB(t, Config{HealthInterval: time.Hour}, hostport(be))
	conn := dialLB(t, lb)
	br := bufio.NewReader(conn)
	pause := func() { <-time.After(50 * time.Millisecond) }
	for _, tc := range []struct {
		name  string
		size  int
		split []int // where the client pauses, as offsets into the body; -1: before the body
	}{
		{"with the header", 512, nil},
		{"after the header", 512, []int{-1}},
		{"in pieces", 512, []int{100, 300}},
		{"shorter than the last", 40, nil},
		{"past what the server reads with the header", 20 << 10, []int{-1, 3000, 12 << 10}},
		{"large with the header", 60 << 10, nil},
		{"small after large", 3, []int{1}},
	} {
		body := bytes.Repeat([]byte{byte('a' + tc.size%26)}, tc.size)
		copy(body, tc.name)
		head := fmt.Sprintf("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body))
		msg := append([]byte(head), body...)
		at := 0
		for _, s := range tc.split {
			end := len(head) + max(s, 0)
			if _, err := conn.Write(msg[at:end]); err != nil {
				t.Fatal(err)
			}
			at = end
			pause()
		}
		if _, err := conn.Write(msg[at:]); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body) {
			t.Fatalf("%s: %d %v, echo of %d bytes differs from the %d sent (starts %q)", tc.name, resp.StatusCode, err,
				len(got), len(body), got[:min(len(got), 40)])
		}
	}
}

// TestBufferedBodyBrokenOff: a client that closes inside a body kept for
// replay, before or after what the server read with the header, is
// answered 400 if at all, and no byte of it reaches the backend.
func TestBufferedBodyBrokenOff(t *testing.T) {
	reached := make(chan string, 10)
	be := testBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		reached <- r.URL.Path
	})
	lb, logs := startLB(t, Config{HealthInterval: time.Hour}, hostport(be))
	for _, sent := range []int{0, 100, 10 << 10} {
		conn := dialLB(t, lb)
		fmt.Fprintf(conn, "POST /cut-%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", sent, 20<<10, strings.Repeat("x", sent))
		<-time.After(50 * time.Millisecond)
		conn.(interface{ CloseWrite() error }).CloseWrite()
		if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%d of %d bytes then a close: %d, want 400 or no answer", sent, 20<<10, resp.StatusCode)
		}
		conn.Close()
	}
	// The cut requests are over: one that reached the backend did so
	// before this one.
	if r := do(t, newClient(t), "GET", lbURL(lb, "/after"), nil); r.status != 200 {
		t.Fatalf("GET after the cuts: %d %s", r.status, r.body)
	}
	if p := <-reached; p != "/after" {
		t.Fatalf("a cut-off body reached the backend: %s", p)
	}
	if n := len(logs.lines("request")); n < 2 {
		t.Errorf("%d access lines, want one at least for the cut the handler saw and the GET", n)
	}
	if st := lb.Backends()[0].Status(); st.Failures != 0 {
		t.Fatalf("a client's cut counted against the backend: %+v", st)
	}
}
