package proxy

import (
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/valyala/fasthttp"
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

func TestClassify(t *testing.T) {
	dial := &errDial{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	read := fmt.Errorf("read response: %w", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)})

	if f := classify(dial, false); !f.dial || f.sent || f.timeout {
		t.Errorf("dial error: %+v", f)
	}
	if f := classify(read, true); f.dial || !f.sent || f.timeout {
		t.Errorf("reset after write: %+v", f)
	}
	if f := classify(fmt.Errorf("write request: %w", io.ErrClosedPipe), false); f.sent || f.dial {
		t.Errorf("write failed before any byte: %+v", f)
	}
	if f := classify(errHeaderTimeout, true); !f.timeout || !f.sent {
		t.Errorf("timeout: %+v", f)
	}
}

func TestConnectionTokens(t *testing.T) {
	got := connectionTokens([][]byte{[]byte("keep-alive, X-Secret"), []byte(" ,Upgrade ,")}, nil)
	want := []string{"keep-alive", "X-Secret", "Upgrade"}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestForwardedHeader(t *testing.T) {
	var in, out fasthttp.RequestHeader
	in.SetHost("example.com:3000")
	setForwarded(&out, &in, 0, &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 5555}, "http", nil)
	if got, want := string(out.Peek("Forwarded")), `for=10.1.2.3;host="example.com:3000";proto=http`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got := string(out.Peek("X-Forwarded-For")); got != "10.1.2.3" {
		t.Errorf("X-Forwarded-For %q", got)
	}
	in.Set("Forwarded", "for=192.0.2.60;proto=https")
	in.Add("X-Forwarded-For", "203.0.113.1")
	in.Add("X-Forwarded-For", "203.0.113.2")
	setForwarded(&out, &in, hasForwarded|hasForwardedFor, &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 5555}, "http", nil)
	if got, want := string(out.Peek("Forwarded")), `for=192.0.2.60;proto=https, for="[2001:db8::1]";host="example.com:3000";proto=http`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got, want := string(out.Peek("X-Forwarded-For")), "203.0.113.1, 203.0.113.2, 2001:db8::1"; got != want {
		t.Errorf("X-Forwarded-For %q, want %q", got, want)
	}
	if q := appendQuoted(nil, []byte(`a"b\c`)); string(q) != `"a\"b\\c"` {
		t.Errorf("quoted %s", q)
	}
}
