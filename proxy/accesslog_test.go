package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// syncBuffer is a bytes.Buffer a LogWriter's flusher may write to while
// the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// accessCase is one access line's fields.
type accessCase struct {
	errMsg, method, path, backend, id string
	status, attempts                  int
	d                                 time.Duration
	remote                            net.Addr
}

// hostileTexts are what a client may put in a path or a request id, and a
// backend error in an error message: quotes, backslashes, every control
// character, DEL, a script tag, valid and invalid UTF-8, a forged field.
func hostileTexts() []string {
	var ctl strings.Builder
	for c := range 0x20 {
		ctl.WriteByte(byte(c))
	}
	return []string{
		"", "/api/posts/1", `/a"b\c`, ctl.String(), "\x7f", "</script><script>alert(1)</script>",
		"é€𝄞", "\xff\xfe", "a\xc3", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80", "x\u2028y",
		`","status":999,"x":"`, "line\nbreak\r\n", "tab\there",
	}
}

// TestAccessLogMatchesZerolog: for hostile and random fields, a line from
// AccessLog is byte for byte the line zerolog writes through logAccess,
// but for the time's value, checked apart (TestAccessLogTime).
func TestAccessLogMatchesZerolog(t *testing.T) {
	remote4 := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 54321}
	remote6 := &net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 80}
	remote7 := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443}
	var cases []accessCase
	texts := hostileTexts()
	for i, s := range texts {
		cases = append(cases, accessCase{errMsg: s, method: "GET", path: s, backend: "127.0.0.1:40001", id: texts[len(texts)-1-i],
			status: 200 + i, attempts: i % 3, d: time.Duration(i) * 1234567, remote: remote4})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	randText := func() string {
		// Up to several of the eight-byte words plainPrefix reads at once.
		b := make([]byte, rng.IntN(72))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return string(b)
	}
	for i := range 2000 {
		cases = append(cases, accessCase{errMsg: randText(), method: randText(), path: randText(), backend: randText(), id: randText(),
			status: rng.IntN(600), attempts: rng.IntN(4), d: time.Duration(rng.Int64N(int64(time.Hour))),
			remote: []net.Addr{remote4, remote6, remote7}[i%3]})
	}
	// Lines of printable ASCII, which the short path takes but for a quote
	// or a backslash, a method it keeps no start for, or attempts other
	// than one; with any duration, even a negative one.
	printable := func() string {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(' ' + rng.IntN('~'-' '+1))
		}
		return string(b)
	}
	for i := range 1000 {
		methods := lineMethods()
		method := printable()
		if k := rng.IntN(len(methods) + 1); k < len(methods) {
			method = methods[k]
		}
		cases = append(cases, accessCase{method: method, path: printable(), backend: printable(), id: printable(),
			status: 100 + rng.IntN(900), attempts: rng.IntN(3), d: time.Duration(rng.Int64N(1<<62) - 1<<61),
			remote: []net.Addr{remote4, remote6, remote7}[i%3]})
	}
	// Every byte at every place in two words of plain text: the scan that
	// reads eight bytes at a time must stop at each that is not plain.
	for c := range 256 {
		for at := range 16 {
			text := []byte(strings.Repeat("a", 16))
			text[at] = byte(c)
			cases = append(cases, accessCase{method: "GET", path: string(text), backend: "b", id: string(text[at:]),
				status: 200, attempts: 1, remote: remote4})
		}
	}
	// Request ids as the balancer makes them.
	p := newProxy(&Config{}, nil, nil, zerolog.Nop(), nil)
	for i := range 50 {
		cases = append(cases, accessCase{method: "GET", path: "/", backend: "127.0.0.1:4000" + strconv.Itoa(i%10), id: string(p.appendID(nil)),
			status: 200, attempts: 1, remote: remote4})
	}
	// Long fields.
	cases = append(cases, accessCase{method: "POST", path: "/" + strings.Repeat("é\"", 600), id: strings.Repeat("i", 300), remote: remote4})

	var zbuf, abuf syncBuffer
	zlw, alw := NewLogWriter(&zbuf, time.Hour), NewLogWriter(&abuf, time.Hour)
	defer zlw.Close()
	defer alw.Close()
	zlog := zerolog.New(zlw).With().Timestamp().Str("component", "lb").Logger()
	a := newAccessLog(alw, zerolog.TimeFieldFormat, "component", "lb")
	p = lineProxy(zerolog.New(alw), a)
	conns := map[net.Addr]*limitedConn{}
	for i, c := range cases {
		// Two lines of three have a backend, whose field the short path
		// needs, and an id that needs no escaping said to be the
		// balancer's own; the third have none ("none").
		var b *Backend
		if i%3 != 0 {
			b = NewBackend(c.backend, 0)
		}
		// Half the lines come over connections that keep the remote
		// field, as the server's do: the first line of each formats it.
		var conn *limitedConn
		if i%2 == 1 {
			if conns[c.remote] == nil {
				conns[c.remote] = &limitedConn{}
			}
			conn = conns[c.remote]
		}
		x := exchangeFor(p, c.method, c.path, c.remote, conn)
		x.errMsg, x.status, x.attempts, x.backend, x.id = c.errMsg, c.status, c.attempts, b, []byte(c.id)
		x.idOurs = b != nil && plainPrefix(c.id) == len(c.id) && !strings.ContainsAny(c.id, `"\`)
		// As finish writes it, through the logger or the access log.
		line := x.line(x.ctx.Method(), x.ctx.Path(), x.status, x.errMsg, c.d)
		line.remote = c.remote
		logAccess(zlog.Info(), &line)
		a.hold(x, x.start.Add(c.d))
	}
	zlw.Flush()
	alw.Flush()
	zl, al := strings.SplitAfter(zbuf.String(), "\n"), strings.SplitAfter(abuf.String(), "\n")
	if len(zl) != len(cases)+1 || len(al) != len(zl) {
		t.Fatalf("%d zerolog lines, %d access lines, for %d cases", len(zl)-1, len(al)-1, len(cases))
	}
	for i := range cases {
		z, got := withoutTime(t, zl[i]), withoutTime(t, al[i])
		if z != got {
			t.Fatalf("case %d:\nzerolog %s\naccess  %s", i, z, got)
		}
		if !json.Valid([]byte(al[i])) {
			t.Fatalf("case %d: not JSON: %s", i, al[i])
		}
	}
}

// lineProxy is a Proxy that writes its access lines through log, or
// through a when it is not nil.
func lineProxy(log zerolog.Logger, a *AccessLog) *Proxy {
	p := newProxy(&Config{}, nil, newMetrics(func() []*Backend { return nil }), log, nil)
	p.access = a
	return p
}

// exchangeFor is an exchange of p's, as the handler starts it, for a
// request method path from the client at remote; over conn when it is not
// nil, a connection of the limiter's, which keeps the line's remote field.
func exchangeFor(p *Proxy, method, path string, remote net.Addr, conn *limitedConn) *exchange {
	ctx := &fasthttp.RequestCtx{}
	if conn != nil {
		conn.Conn = addrConn{remote: remote}
		ctx.Init2(conn, nil, false)
	} else {
		ctx.Init(&fasthttp.Request{}, remote, nil)
	}
	ctx.Request.Header.SetMethod(method)
	ctx.URI().SetPath(path)
	return &exchange{p: p, ctx: ctx, start: time.Now()}
}

// addrConn is a connection that tells its client's address and nothing
// more.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

// TestPlainLine: the short path writes the usual line as the general one
// does, and leaves to it every line it could get wrong, and a buffer
// without room for the line.
func TestPlainLine(t *testing.T) {
	a := newAccessLog(nil, "2006-01-02T15:04:05.000Z07:00", "component", "lb")
	base := accessLine{method: []byte("GET"), path: []byte("/api/posts"), status: 200, backend: "127.0.0.1:40001",
		backendField: backendField("127.0.0.1:40001"), okField: statusOKField("127.0.0.1:40001"), attempts: 1, d: 1234567 * time.Nanosecond, id: []byte("0123abcd"),
		remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 54321}}
	remote, end := newRemoteField(nil, addrConn{remote: base.remote}), a.lineEnd(time.Now())
	want := string(a.appendLine(nil, &base, remote, end))
	buf := make([]byte, 1024)
	n, ok := a.plainLine(buf, &base, remote, end)
	if !ok || string(buf[:n]) != want {
		t.Fatalf("short path: %v %q, want %q", ok, buf[:n], want)
	}
	for _, m := range lineMethods() {
		l := base
		l.method = []byte(m)
		n, ok := a.plainLine(buf, &l, remote, end)
		if want := string(a.appendLine(nil, &l, remote, end)); !ok || string(buf[:n]) != want {
			t.Fatalf("%s: %v %q, want %q", m, ok, buf[:n], want)
		}
	}
	// Other statuses write the status, then the backend's field; 200
	// writes both from one piece, which must read the same.
	for _, st := range []int{100, 199, 200, 201, 404, 502, 999} {
		for _, ok200 := range [][]byte{base.okField, nil} {
			l := base
			l.status, l.okField = st, ok200
			n, ok := a.plainLine(buf, &l, remote, end)
			if want := string(a.appendLine(nil, &l, remote, end)); !ok || string(buf[:n]) != want {
				t.Fatalf("status %d: %v %q, want %q", st, ok, buf[:n], want)
			}
		}
	}
	for size := range n {
		if _, ok := a.plainLine(buf[:size], &base, remote, end); ok {
			t.Fatalf("a line of %d bytes written in %d", n, size)
		}
	}
	for name, change := range map[string]func(l *accessLine){
		"error":        func(l *accessLine) { l.errMsg = "x" },
		"no backend":   func(l *accessLine) { l.backendField = nil },
		"method":       func(l *accessLine) { l.method = []byte(`G"T`) },
		"other method": func(l *accessLine) { l.method = []byte("PATCH") },
		"lower case":   func(l *accessLine) { l.method = []byte("get") },
		"path":         func(l *accessLine) { l.path = []byte("/a\nb") },
		"path utf-8":   func(l *accessLine) { l.path = []byte("/é") },
		"id":           func(l *accessLine) { l.id = []byte(`a\b`) },
		"status":       func(l *accessLine) { l.status = -1 },
		"status 99":    func(l *accessLine) { l.status = 99 },
		"status 1000":  func(l *accessLine) { l.status = 1000 },
		"attempts 0":   func(l *accessLine) { l.attempts = 0 },
		"attempts 2":   func(l *accessLine) { l.attempts = 2 },
	} {
		l := base
		change(&l)
		if _, ok := a.plainLine(buf, &l, remote, end); ok {
			t.Errorf("%s: taken by the short path", name)
		}
	}
}

// withoutTime blanks the time field's value, which must be there.
func withoutTime(t *testing.T, line string) string {
	t.Helper()
	key := `,"time":"`
	i := strings.LastIndex(line, key)
	if i < 0 {
		t.Fatalf("no time in %s", line)
	}
	j := strings.IndexByte(line[i+len(key):], '"')
	return line[:i+len(key)] + line[i+len(key)+j:]
}

// TestAccessLogTime: the time is the layout's, in the time's own location,
// whether it comes from the millisecond's stamp or not, and across
// millisecond, second and zone changes.
func TestAccessLogTime(t *testing.T) {
	zone := time.FixedZone("X", 5*3600+30*60)
	base := time.Date(2026, 12, 31, 23, 59, 59, 998_000_000, time.UTC)
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05.000Z07:00", time.RFC3339Nano, time.StampMicro} {
		a := newAccessLog(nil, layout)
		for i := range 5000 {
			tm := base.Add(time.Duration(i) * 1357 * time.Nanosecond * 97)
			if i%7 == 3 {
				tm = tm.In(zone)
			}
			want := `,"time":"` + tm.Format(layout) + `","message":"request"}` + "\n"
			if got := string(a.lineEnd(tm)); got != want {
				t.Fatalf("layout %q, %v: %q, want %q", layout, tm, got, want)
			}
		}
	}
	if newAccessLog(nil, zerolog.TimeFormatUnixMs) != nil {
		t.Fatal("an access log for Unix times, which zerolog writes as numbers")
	}
}

// TestAccessLogLines: through a running balancer, every request gets one
// line that the log's readers parse, and none when the logger's level
// keeps info lines out.
func TestAccessLogLines(t *testing.T) {
	be := testBackend(t, "a", nil)
	for _, lvl := range []zerolog.Level{zerolog.InfoLevel, zerolog.WarnLevel} {
		out := &syncBuffer{}
		lw := NewLogWriter(out, 10*time.Millisecond)
		s, err := NewServer(Config{Listen: "127.0.0.1:0", HealthListen: "127.0.0.1:0", Backends: []string{hostport(be)}, HealthInterval: time.Hour},
			zerolog.New(lw).Level(lvl).With().Timestamp().Str("component", "lb").Logger(), nil)
		if err != nil {
			t.Fatal(err)
		}
		s.SetAccessLog(NewAccessLog(lw, "component", "lb"))
		if err := s.Open(); err != nil {
			t.Fatal(err)
		}
		client := newClient(t)
		for _, path := range []string{"/a", `/q?x="1"`, "/%E2%80%A8"} {
			if r := do(t, client, "GET", lbURL(s, path), nil, "X-Request-Id", "id\"\\"+path); r.status != 200 {
				t.Fatalf("%s: %d", path, r.status)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		lw.Close()
		var lines []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if l == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			if m["message"] == "request" {
				lines = append(lines, m)
			}
		}
		if lvl > zerolog.InfoLevel {
			if len(lines) != 0 {
				t.Fatalf("level %v: %d access lines", lvl, len(lines))
			}
			continue
		}
		if len(lines) != 3 {
			t.Fatalf("%d access lines for 3 requests: %s", len(lines), out)
		}
		m := lines[1]
		if m["path"] != "/q" || m["request_id"] != `id"\/q?x="1"` || m["status"] != float64(200) || m["component"] != "lb" ||
			m["level"] != "info" || m["backend"] != hostport(be) || m["method"] != "GET" || m["attempts"] != float64(1) {
			t.Fatalf("access line %v", m)
		}
		if _, err := time.Parse(zerolog.TimeFieldFormat, m["time"].(string)); err != nil {
			t.Fatalf("time %v: %v", m["time"], err)
		}
	}
}

// TestAccessLogRemotePerConnection: each connection's lines name its own
// client address, which a connection keeps from its first line on, and not
// another connection's.
func TestAccessLogRemotePerConnection(t *testing.T) {
	be := testBackend(t, "a", nil)
	out := &syncBuffer{}
	lw := NewLogWriter(out, time.Hour)
	s, err := NewServer(Config{Listen: "127.0.0.1:0", HealthListen: "127.0.0.1:0", Backends: []string{hostport(be)}, HealthInterval: time.Hour},
		zerolog.New(lw).With().Timestamp().Str("component", "lb").Logger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.SetAccessLog(NewAccessLog(lw, "component", "lb"))
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	conns := []*rawClient{{addr: s.Addr(), timeout: 10 * time.Second}, {addr: s.Addr(), timeout: 10 * time.Second}}
	var resp rawResponse
	// The connections take turns, so a shared cache would show.
	for range 3 {
		for _, c := range conns {
			if err := c.do([]byte("GET /a HTTP/1.1\r\nHost: lb\r\n\r\n"), &resp); err != nil || resp.status != 200 {
				t.Fatalf("status %d, %v", resp.status, err)
			}
		}
	}
	want := map[string]int{}
	for _, c := range conns {
		want[c.conn.LocalAddr().String()] = 3 // the connection answered all three
		defer c.close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	lw.Close()
	got := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if m["message"] == "request" {
			got[m["remote"].(string)]++
		}
	}
	if !maps.Equal(got, want) {
		t.Fatalf("lines by remote %v, want %v\n%s", got, want, out)
	}
}

// TestAccessLogHeldInOrder: access lines, held until the write-out, come out
// whole and in their places among the logger's other lines, each
// goroutine's in its order, while writes are under way; none is lost once
// Close returns.
func TestAccessLogHeldInOrder(t *testing.T) {
	var out slowBuffer
	lw := NewLogWriter(&out, time.Millisecond)
	log := zerolog.New(lw).With().Str("component", "lb").Logger()
	p := lineProxy(log, newAccessLog(lw, "2006-01-02T15:04:05.000Z07:00", "component", "lb"))
	const writers, lines = 8, 3000
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 54321}
	b := NewBackend("b", 0)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := &limitedConn{}
			for i := range lines {
				if i%3 == 0 {
					log.Info().Int("w", w).Int("i", i).Msg("other")
				}
				path := fmt.Sprintf("/w/%d/%d", w, i)
				if i%5 == 0 {
					path += `"` // formatted the general way
				}
				x := exchangeFor(p, "GET", path, remote, conn)
				x.status, x.backend, x.attempts, x.id, x.idOurs = 200, b, 1, []byte("id"), true
				x.finish()
			}
		}()
	}
	wg.Wait()
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers) // each writer's next event: 2i for its other line, 2i+1 for its access line
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		var m struct {
			Message, Path string
			W, I          int
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		event := 0
		switch m.Message {
		case "other":
			event = 2 * m.I
		case "request":
			if _, err := fmt.Sscanf(m.Path, "/w/%d/%d", &m.W, &m.I); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			event = 2*m.I + 1
		default:
			t.Fatalf("line %q", line)
		}
		if want := next[m.W]; event != want {
			t.Fatalf("writer %d: event %d where %d was due: %s", m.W, event, want, line)
		}
		next[m.W]++
		if next[m.W]%2 == 0 && (next[m.W]/2)%3 != 0 {
			next[m.W]++ // no other line for this i
		}
	}
	for w, n := range next {
		if n != 2*lines {
			t.Fatalf("writer %d: stopped at event %d of %d", w, n, 2*lines)
		}
	}
	if out.writes.Load() < 2 {
		t.Fatalf("%d writes: the size limit never wrote", out.writes.Load())
	}
}

// TestAccessLogHeldLineKept: a held line tells the request as it was when
// its line was held, whatever is done to its exchange until the write-out,
// and whatever the connection's next request puts in the server's buffers.
func TestAccessLogHeldLineKept(t *testing.T) {
	var out syncBuffer
	lw := NewLogWriter(&out, time.Hour)
	a := newAccessLog(lw, "2006-01-02T15:04:05.000Z07:00", "component", "lb")
	p := lineProxy(zerolog.New(lw), a)
	x := exchangeFor(p, "GET", "/first", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 54321}, &limitedConn{})
	x.status, x.backend, x.attempts, x.id, x.idOurs = 200, NewBackend("127.0.0.1:40001", 0), 1, []byte("id-1"), true
	x.finish()
	x.status, x.errMsg = 502, "changed after the line was held"
	x.ctx.Request.Header.SetMethod("POST")
	x.ctx.URI().SetPath("/second")
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out.String()), &m); err != nil {
		t.Fatalf("line %q: %v", out.String(), err)
	}
	if m["method"] != "GET" || m["path"] != "/first" || m["status"] != float64(200) || m["error"] != nil {
		t.Fatalf("line %s", out.String())
	}
}
