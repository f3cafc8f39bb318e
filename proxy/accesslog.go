package proxy

import (
	"net"
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

// write appends one access line; the fields are logAccess's, t the time
// of the line.
func (a *AccessLog) write(t time.Time, errMsg string, method, path []byte, status int, backend string, attempts int,
	d time.Duration, id string, remote net.Addr) {
	// The address is formatted before the lock is taken; the rest is
	// appended under it, in place.
	var rb [64]byte
	addr := appendAddr(rb[:0], remote)
	b := a.lw.lockBuf()
	b = append(b, a.head...)
	if errMsg != "" {
		b = appendJSONString(append(b, `,"error":`...), errMsg)
	}
	b = appendJSONString(append(b, `,"method":`...), method)
	b = appendJSONString(append(b, `,"path":`...), path)
	b = strconv.AppendInt(append(b, `,"status":`...), int64(status), 10)
	b = appendJSONString(append(b, `,"backend":`...), backend)
	b = strconv.AppendInt(append(b, `,"attempts":`...), int64(attempts), 10)
	b = appendMillis(append(b, `,"duration_ms":`...), d)
	b = appendJSONString(append(b, `,"request_id":`...), id)
	b = appendJSONString(append(b, `,"remote":`...), addr)
	b = append(append(a.appendTime(append(b, a.timeKey...), t), '"'), a.tail...)
	a.lw.buf = b
	_ = a.lw.appended()
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
	s := &timeStamp{ms: ms, loc: loc, text: t.AppendFormat(nil, a.layout)}
	a.stamp.Store(s)
	return append(dst, s.text...)
}

// appendJSONString appends s as a JSON string, escaped as zerolog escapes
// it: quote, backslash and control characters (DEL too) escaped, short
// forms for \b \f \n \r \t, and \ufffd for each byte of invalid UTF-8.
func appendJSONString[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	i := 0
	for i < len(s) && jsonPlain[s[i]] == 'y' {
		i++
	}
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
