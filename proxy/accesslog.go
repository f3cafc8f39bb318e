package proxy

import (
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
type AccessLog struct {
	lw     *LogWriter
	head   []byte // {"level":"info" and the logger's context fields
	layout string
	// msCache: the layout shows nothing finer than the millisecond, so
	// one formatted time serves a whole millisecond (stamp).
	msCache bool
	stamp   atomic.Pointer[timeStamp]
	timeKey []byte // ,"time":" (the opening quote of the value too)
	tail    []byte // the message field and the line's end
}

// timeStamp is a time formatted with the layout, for the millisecond ms
// in loc.
type timeStamp struct {
	ms   int64
	loc  *time.Location
	text []byte
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
	a.head = appendJSONString(append(a.head, '{'), zerolog.LevelFieldName)
	a.head = appendJSONString(append(a.head, ':'), zerolog.LevelFieldMarshalFunc(zerolog.InfoLevel))
	for i := 0; i+1 < len(fields); i += 2 {
		a.head = appendJSONString(append(a.head, ','), fields[i])
		a.head = appendJSONString(append(a.head, ':'), fields[i+1])
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

// write appends one access line, l at time t.
func (a *AccessLog) write(t time.Time, l *accessLine) {
	// The address is formatted before the lock is taken; the rest is
	// appended under it, in place.
	var rb [72]byte
	remote := quotedRemote(rb[:0], l)
	b := a.lw.lockBuf()
	b = append(b, a.head...)
	if l.errMsg != "" {
		b = appendJSONString(append(b, `,"error":`...), l.errMsg)
	}
	b = appendJSONString(append(b, `,"method":`...), l.method)
	b = appendJSONString(append(b, `,"path":`...), l.path)
	b = appendSmallInt(append(b, `,"status":`...), l.status)
	if l.quotedBackend != nil {
		b = append(append(b, `,"backend":`...), l.quotedBackend...)
	} else {
		b = appendJSONString(append(b, `,"backend":`...), l.backend)
	}
	b = appendSmallInt(append(b, `,"attempts":`...), l.attempts)
	b = appendMillis(append(b, `,"duration_ms":`...), l.d)
	if l.idPlain {
		b = append(append(append(b, `,"request_id":"`...), l.id...), '"')
	} else {
		b = appendJSONString(append(b, `,"request_id":`...), l.id)
	}
	b = append(append(b, `,"remote":`...), remote...)
	b = append(append(a.appendTime(append(b, a.timeKey...), t), '"'), a.tail...)
	a.lw.buf = b
	_ = a.lw.appended()
}

// quotedRemote appends the client's address as a JSON string, from the
// connection's state when it has it there.
func quotedRemote(dst []byte, l *accessLine) []byte {
	if l.conn != nil && l.conn.quotedRemote != nil {
		return append(dst, l.conn.quotedRemote...)
	}
	var rb [64]byte
	q := appendJSONString(dst, appendAddr(rb[:0], l.remote))
	if l.conn != nil {
		l.conn.quotedRemote = slices.Clone(q[len(dst):])
	}
	return q
}

// appendSmallInt is strconv.AppendInt for the short numbers of a line
// (a status, a count of attempts), without its general loop.
func appendSmallInt(dst []byte, n int) []byte {
	switch {
	case n >= 0 && n < 10:
		return append(dst, byte('0'+n))
	case n >= 100 && n < 1000:
		return append(dst, byte('0'+n/100), byte('0'+n/10%10), byte('0'+n%10))
	}
	return strconv.AppendInt(dst, int64(n), 10)
}

// appendTime formats t with the layout, from the stamp when it is of the
// same millisecond.
func (a *AccessLog) appendTime(dst []byte, t time.Time) []byte {
	if !a.msCache {
		return t.AppendFormat(dst, a.layout)
	}
	ms, loc := t.UnixMilli(), t.Location()
	if s := a.stamp.Load(); s != nil && s.ms == ms && s.loc == loc {
		return append(dst, s.text...)
	}
	s := &timeStamp{ms: ms, loc: loc, text: t.AppendFormat(make([]byte, 0, 64), a.layout)}
	a.stamp.Store(s)
	return append(dst, s.text...)
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
