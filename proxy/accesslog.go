package proxy

import (
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
)

// AccessLog writes the balancer's access lines as JSON straight into a
// LogWriter, without a zerolog event: on the request path, the event, its
// hooks and a general time formatter are most of what a line costs. The
// line is byte for byte the one zerolog writes through a JSON logger with
// the same context fields and a timestamp (logAccess): the same fields, in
// the same order, escaped the same way, so nothing that reads the log can
// tell them apart.
//
// What is left of a line's cost is mostly the instruction cache: a
// request's code is several times the size of the CPU's first-level cache,
// so every line of code the log runs on the request's path is fetched again
// for each request. So the request only holds its line in the LogWriter
// (hold): its exchange, which tells most of the line, with the few bytes
// that the connection's next request would overwrite copied out. The lines
// are formatted when the LogWriter writes them out, a batch at a time, with
// the formatter's code in the cache from one line to the next. A line whose
// texts need no escaping, the usual one, is copied in a few pieces
// (plainLine): the backend's field and the client's are kept formatted,
// and the end of the line with its time serves a whole millisecond.
type AccessLog struct {
	lw     *LogWriter
	head   []byte               // {"level":"info" and the logger's context fields
	starts [nLineMethods][]byte // head, a method, the path's key
	layout string
	// msCache: the layout shows nothing finer than the millisecond, so
	// one formatted line end serves a whole millisecond (stamp).
	msCache bool
	stamp   atomic.Pointer[timeStamp]
	timeKey []byte // ,"time":" (the opening quote of the value too)
	tail    []byte // the message field and the line's end
}

// timeStamp is a line's end for the millisecond ms in loc: the time
// formatted with the layout, with its key, and the message field.
type timeStamp struct {
	ms  int64
	loc *time.Location
	end []byte
}

// NewAccessLog writes access lines to lw as the JSON logger whose context
// fields are fields (key, value, key, value...) would, with zerolog's
// current field names and time format. It returns nil when that time
// format is one of zerolog's Unix-time settings rather than a layout: the
// lines then go through the logger.
func NewAccessLog(lw *LogWriter, fields ...string) *AccessLog {
	return newAccessLog(lw, zerolog.TimeFieldFormat, fields...)
}

func newAccessLog(lw *LogWriter, layout string, fields ...string) *AccessLog {
	switch layout {
	case zerolog.TimeFormatUnix, zerolog.TimeFormatUnixMs, zerolog.TimeFormatUnixMicro, zerolog.TimeFormatUnixNano:
		return nil
	}
	a := &AccessLog{lw: lw, layout: layout}
	if lw != nil {
		if lw.access != nil {
			panic("proxy: a LogWriter formats the lines of one AccessLog")
		}
		lw.access = a
	}
	a.head = appendJSONString(append(a.head, '{'), zerolog.LevelFieldName)
	a.head = appendJSONString(append(a.head, ':'), zerolog.LevelFieldMarshalFunc(zerolog.InfoLevel))
	for i := 0; i+1 < len(fields); i += 2 {
		a.head = appendJSONString(append(a.head, ','), fields[i])
		a.head = appendJSONString(append(a.head, ':'), fields[i+1])
	}
	for i, m := range lineMethods() {
		a.starts[i] = append(appendJSONString(append(slices.Clip(a.head), `,"method":`...), m), `,"path":"`...)
	}
	a.timeKey = append(appendJSONString(append(a.timeKey, ','), zerolog.TimestampFieldName), `:"`...)
	a.tail = appendJSONString(append(a.tail, ','), zerolog.MessageFieldName)
	a.tail = append(appendJSONString(append(a.tail, ':'), "request"), "}\n"...)
	// A layout that prints two instants of one millisecond alike prints
	// nothing below it.
	t0 := time.Date(2001, 2, 3, 4, 5, 6, 7_000_000, time.UTC)
	a.msCache = t0.Format(layout) == t0.Add(time.Millisecond-1).Format(layout)
	return a
}

// SetAccessLog has the access lines written by a rather than through the
// server's logger, when the logger's level lets info lines through. Call it
// before Open.
func (s *Server) SetAccessLog(a *AccessLog) { s.proxy.access = a }

// hold holds x's access line, for a request that ended at t, in the log,
// to be formatted when the log is written out (see LogWriter). It is the
// only code the log runs on a request's path, so it only copies what the
// connection's next request would overwrite, in one function: each call
// there costs its code's cache lines too. The rest of the line is in x,
// which waits in the log until then.
func (a *AccessLog) hold(x *exchange, t time.Time) {
	x.end = t
	method, path := x.ctx.Request.Header.Method(), x.ctx.Path()
	conn := carriedState(x.ctx.Conn())
	var remote []byte
	if conn != nil {
		remote = conn.remoteField // from the connection's first line on
	}
	if remote == nil {
		remote = newRemoteField(conn, x.ctx)
	}
	l := a.lw
	l.mu.Lock()
	h := &l.held
	textAt := len(h.text)
	h.text = append(append(h.text, method...), path...)
	h.lines = append(h.lines, heldLine{x: x, remote: remote, errMsg: x.errMsg, at: len(l.buf), textAt: textAt,
		methodLen: int32(len(method)), pathLen: int32(len(path)), status: int32(x.status)})
	h.size += len(h.text) - textAt + len(x.id) + heldLineSize
	if len(l.buf)+h.size < logWriterSize { // appended's usual case, without the call
		l.mu.Unlock()
		return
	}
	_ = l.appended()
}

// appendHeld appends the line of a held line l, at time t with the remote
// field remote.
func (a *AccessLog) appendHeld(dst []byte, t time.Time, l *accessLine, remote []byte) []byte {
	end := a.lineEnd(t)
	if n, ok := a.plainLine(dst[len(dst):cap(dst)], l, remote, end); ok {
		return dst[:len(dst)+n]
	}
	return a.appendLine(dst, l, remote, end)
}

// plainLine writes l's line at the start of dst, when its method is one of
// lineMethods, none of its texts needs escaping, its numbers are the usual
// ones (a status of three digits, one attempt), and dst has room. It
// returns false, having written nothing that counts, otherwise.
//
// The line is copied in eight pieces, most of them kept formatted: the
// line's start up to the path, for each method (a.starts); the backend's
// field with its attempt, with the status ahead when it is 200 (one piece
// fewer); the connection's remote field; the millisecond's line end.
func (a *AccessLog) plainLine(dst []byte, l *accessLine, remote, end []byte) (int, bool) {
	start := a.start(l.method)
	path, backend, id := l.path, l.backendField, l.id
	status := uint(l.status)
	if start == nil || l.errMsg != "" || backend == nil || l.attempts != 1 || status-100 > 899 ||
		plainPrefix(path) != len(path) || !l.idPlain && plainPrefix(id) != len(id) {
		return 0, false
	}
	const statusLen = len(`","status":200`)
	const room = statusLen + 20 + len(`.000,"request_id":"`)
	if len(dst) < len(start)+len(path)+len(backend)+len(id)+len(remote)+len(end)+room {
		return 0, false
	}
	i := copy(dst, start)
	i += copy(dst[i:], path)
	if status == 200 && l.okField != nil {
		i += copy(dst[i:], l.okField)
	} else {
		st := dst[i : i+statusLen]
		copy(st, `","status":`)
		st[statusLen-3], st[statusLen-2], st[statusLen-1] = byte('0'+status/100), byte('0'+status/10%10), byte('0'+status%10)
		i += statusLen
		i += copy(dst[i:], backend)
	}
	i += putMillis(dst[i:], l.d)
	i += copy(dst[i:], `,"request_id":"`)
	i += copy(dst[i:], id)
	i += copy(dst[i:], remote)
	return i + copy(dst[i:], end), true
}

// lineMethods are the methods whose lines' starts an AccessLog keeps, in
// the order of start's cases.
func lineMethods() [nLineMethods]string { return [...]string{"GET", "POST", "PUT", "DELETE", "HEAD"} }

const nLineMethods = 5

// start is the start of a line for method, up to its path, or nil when
// method is not one of lineMethods.
func (a *AccessLog) start(method []byte) []byte {
	switch string(method) {
	case "GET":
		return a.starts[0]
	case "POST":
		return a.starts[1]
	case "PUT":
		return a.starts[2]
	case "DELETE":
		return a.starts[3]
	case "HEAD":
		return a.starts[4]
	}
	return nil
}

// putMillis writes d at the start of dst, as a JSON number of milliseconds
// to the microsecond, and returns the length written; dst has room for any
// d (maxMillisLen).
func putMillis(dst []byte, d time.Duration) int {
	dst = dst[:maxMillisLen]
	us := uint64(max(d.Microseconds(), 0))
	if us < 10_000 { // the usual answer: one digit of milliseconds
		d5 := dst[:5]
		d5[0], d5[1], d5[2], d5[3], d5[4] = byte('0'+us/1000), '.', byte('0'+us/100%10), byte('0'+us/10%10), byte('0'+us%10)
		return 5
	}
	ms := us / 1000
	n := 1
	for v := ms; v >= 10; v /= 10 {
		n++
	}
	for j := n - 1; j >= 0; j-- {
		dst[j] = byte('0' + ms%10)
		ms /= 10
	}
	frac := us % 1000
	d4 := dst[n : n+4]
	d4[0], d4[1], d4[2], d4[3] = '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10)
	return n + 4
}

// appendLine appends l's line whatever its texts: escaped as zerolog
// escapes them.
func (a *AccessLog) appendLine(b []byte, l *accessLine, remote, end []byte) []byte {
	b = append(b, a.head...)
	if l.errMsg != "" {
		b = appendJSONString(append(b, `,"error":`...), l.errMsg)
	}
	b = appendJSONString(append(b, `,"method":`...), l.method)
	b = appendJSONString(append(b, `,"path":`...), l.path)
	b = strconv.AppendInt(append(b, `,"status":`...), int64(l.status), 10)
	b = appendJSONString(append(b, `,"backend":`...), l.backend)
	b = strconv.AppendInt(append(b, `,"attempts":`...), int64(l.attempts), 10)
	b = appendMillis(append(b, `,"duration_ms":`...), l.d)
	b = appendJSONString(append(b, `,"request_id":`...), l.id)
	return append(append(b, remote[1:]...), end...)
}

// newRemoteField formats a line's remote field, after the quote that ends
// the request id before it, for a request from client. The connection's
// state conn, when there is one, keeps it for the connection's next lines.
func newRemoteField(conn *clientState, client interface{ RemoteAddr() net.Addr }) []byte {
	var rb [64]byte
	f := appendJSONString([]byte(`","remote":`), appendAddr(rb[:0], client.RemoteAddr()))
	if conn != nil {
		conn.remoteField = f
	}
	return f
}

// backendField is the part of an access line that names backend addr,
// with the one attempt of a request that needed no other and the key of
// the duration that follows.
func backendField(addr string) []byte {
	return append(appendJSONString([]byte(`,"backend":`), addr), `,"attempts":1,"duration_ms":`...)
}

// statusOKField is backendField after the end of the path and a status of
// 200, as plainLine writes them.
func statusOKField(addr string) []byte {
	return append([]byte(`","status":200`), backendField(addr)...)
}

// lineEnd is the end of a line written at t: the time field, formatted
// with the layout, and the message field. It comes from the stamp when t
// is of its millisecond.
func (a *AccessLog) lineEnd(t time.Time) []byte {
	if !a.msCache {
		return append(append(t.AppendFormat(slices.Clone(a.timeKey), a.layout), '"'), a.tail...)
	}
	ms, loc := t.UnixMilli(), t.Location()
	if s := a.stamp.Load(); s != nil && s.ms == ms && s.loc == loc {
		return s.end
	}
	end := t.AppendFormat(append(make([]byte, 0, 96), a.timeKey...), a.layout)
	s := &timeStamp{ms: ms, loc: loc, end: append(append(end, '"'), a.tail...)}
	a.stamp.Store(s)
	return s.end
}

// appendJSONString appends s as a JSON string, escaped as zerolog escapes
// it: quote, backslash and control characters (DEL too) escaped, short
// forms for \b \f \n \r \t, and \ufffd for each byte of invalid UTF-8.
func appendJSONString[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	i := plainPrefix(s)
	if i == len(s) {
		return append(append(dst, s...), '"')
	}
	start := 0
	for i < len(s) {
		c := s[i]
		if jsonPlain[c] == 'y' {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := decodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(append(dst, s[start:i]...), `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	return append(append(dst, s[start:]...), '"')
}

// plainPrefix is how many of s's first bytes a JSON string takes as they
// are. It looks at eight bytes at a time, as most texts in a line need no
// escape at all, then byte by byte from the first word that may.
func plainPrefix[S ~string | ~[]byte](s S) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		t := s[i : i+8] // one bounds check for the eight reads
		w := uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24 |
			uint64(t[4])<<32 | uint64(t[5])<<40 | uint64(t[6])<<48 | uint64(t[7])<<56
		if mayNeedEscape(w) {
			break
		}
	}
	for i < len(s) && jsonPlain[s[i]] == 'y' {
		i++
	}
	return i
}

// mayNeedEscape reports whether any of the eight bytes in w is not plain
// (jsonPlain): below a space, a quote, a backslash, DEL, or past ASCII.
// Each test is the classic "has a zero byte" trick: (x - 0x01..) & ^x &
// 0x80.. is not zero exactly when some byte of x is zero, and with 0x20..
// in place of 0x01.., when some byte is below 0x20; x is w xor a byte
// repeated, zero where w has that byte.
func mayNeedEscape(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, bs, del := w^('"'*ones), w^('\\'*ones), w^(0x7f*ones)
	return (w&highs)|((w-0x20*ones)&^w&highs)|
		((q-ones)&^q&highs)|((bs-ones)&^bs&highs)|((del-ones)&^del&highs) != 0
}

// jsonPlain marks with 'y' the bytes a JSON string takes as they are:
// printable ASCII but the quote and the backslash. The rest are escaped, or
// begin a UTF-8 sequence that is checked.
const jsonPlain = "" +
	"................................" + // control characters
	"yy.yyyyyyyyyyyyyyyyyyyyyyyyyyyyy" + // space to '?', but '"'
	"yyyyyyyyyyyyyyyyyyyyyyyyyyyy.yyy" + // '@' to '_', but '\\'
	"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy." + // '`' to '~', and DEL
	"................................................................" +
	"................................................................"

// decodeRune is utf8.DecodeRune for either kind of text.
func decodeRune[S ~string | ~[]byte](s S) (rune, int) {
	var b [utf8.UTFMax]byte
	n := copy(b[:], s[:min(len(s), utf8.UTFMax)])
	return utf8.DecodeRune(b[:n])
}
