package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestRetryDecision is the whole table: method × bytes written × Idempotency-Key
// × body size (none, small, exactly the 1 MiB limit, over it, read or not).
func TestRetryDecision(t *testing.T) {
	methods := []string{"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST", "PATCH", "CONNECT"}
	type body struct {
		name    string
		kind    bodyKind
		touched bool
	}
	bodies := []body{
		{"none", bodyNone, false},
		{"small", bodyBuffered, false},
		{"1MiB", bodyBuffered, false},
		{"over1MiB-unread", bodyStreamed, false},
		{"over1MiB-read", bodyStreamed, true},
	}
	for _, m := range methods {
		for _, sent := range []bool{false, true} {
			for _, key := range []bool{false, true} {
				for _, bd := range bodies {
					var want bool
					switch {
					case bd.touched: // part of the stream is gone
						want = false
					case !sent: // the backend never saw it: any method
						want = true
					case bd.kind == bodyStreamed:
						want = false
					default:
						want = m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "PUT" || m == "DELETE" || key
					}
					name := fmt.Sprintf("%s/sent=%v/key=%v/%s", m, sent, key, bd.name)
					if got := retryable(m, sent, key, bd.kind, bd.touched); got != want {
						t.Errorf("%s: retryable = %v, want %v", name, got, want)
					}
				}
			}
		}
	}
}

func TestPrepareBody(t *testing.T) {
	const max = 1 << 20
	mk := func(n int, chunked bool) *http.Request {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(bytes.Repeat([]byte("x"), n)))
		if chunked {
			r.ContentLength = -1
		}
		return r
	}
	for _, tc := range []struct {
		name    string
		r       *http.Request
		want    bodyKind
		wantLen int
	}{
		{"None", httptest.NewRequest("GET", "/", nil), bodyNone, 0},
		{"Small", mk(100, false), bodyBuffered, 100},
		{"ExactlyLimit", mk(max, false), bodyBuffered, max},
		{"OverLimit", mk(max+1, false), bodyStreamed, max + 1},
		{"ChunkedSmall", mk(100, true), bodyBuffered, 100},
		{"ChunkedOverLimit", mk(max+10, true), bodyStreamed, max + 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, buf, stream, err := prepareBody(tc.r, max)
			if err != nil || kind != tc.want {
				t.Fatalf("kind %v err %v, want %v", kind, err, tc.want)
			}
			switch kind {
			case bodyBuffered:
				if len(buf) != tc.wantLen {
					t.Fatalf("buffered %d bytes, want %d", len(buf), tc.wantLen)
				}
			case bodyStreamed:
				if stream.touched.Load() {
					t.Fatal("stream touched before anyone read it")
				}
				stream.Close() // the transport closing a failed attempt's body must not end it
				n, err := io.Copy(io.Discard, stream)
				if err != nil || int(n) != tc.wantLen || !stream.touched.Load() {
					t.Fatalf("streamed %d bytes, err %v, touched %v; want %d", n, err, stream.touched.Load(), tc.wantLen)
				}
			}
		})
	}
	t.Run("ShortBody", func(t *testing.T) {
		r := httptest.NewRequest("POST", "/", strings.NewReader("abc"))
		r.ContentLength = 10 // the client promised more than it sent
		if _, _, _, err := prepareBody(r, max); err == nil {
			t.Fatal("no error for a body shorter than its Content-Length")
		}
	})
}

func TestClassify(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	read := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	timeout := fmt.Errorf("round trip: %w", timeoutErr{})
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	bg := context.Background()

	if f := classify(bg, dial, true); !f.dial || f.sent || f.timeout || f.clientGone {
		t.Errorf("dial error: %+v", f)
	}
	if f := classify(bg, read, true); f.dial || !f.sent || f.timeout {
		t.Errorf("reset after write: %+v", f)
	}
	if f := classify(bg, io.ErrUnexpectedEOF, false); f.sent || f.dial {
		t.Errorf("EOF before write: %+v", f)
	}
	if f := classify(bg, timeout, true); !f.timeout || !f.sent {
		t.Errorf("timeout: %+v", f)
	}
	if f := classify(canceled, errors.New("context canceled"), true); !f.clientGone {
		t.Errorf("client gone: %+v", f)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "timeout awaiting response headers" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestForwardedHeader(t *testing.T) {
	r := httptest.NewRequest("GET", "http://example.com:3000/", nil)
	r.RemoteAddr = "10.1.2.3:5555"
	if got, want := forwarded(r), `for=10.1.2.3;host="example.com:3000";proto=http`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	r.RemoteAddr = "[2001:db8::1]:5555"
	r.Header.Set("Forwarded", "for=192.0.2.60;proto=https")
	if got, want := forwarded(r), `for=192.0.2.60;proto=https, for="[2001:db8::1]";host="example.com:3000";proto=http`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestBufferPool(t *testing.T) {
	p := newBufferPool(1, 16)
	b := p.Get()
	if len(b) != 16 {
		t.Fatalf("len %d", len(b))
	}
	p.Put(b)
	if c := p.Get(); &c[0] != &b[0] {
		t.Fatal("buffer not reused")
	}
	p.Put(make([]byte, 8)) // wrong size: dropped, not handed out later
	if c := p.Get(); len(c) != 16 {
		t.Fatalf("got a %d-byte buffer", len(c))
	}
}
