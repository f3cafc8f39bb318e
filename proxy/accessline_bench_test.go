package proxy

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// BenchmarkAccessLine is the cost of one access line alone, built as finish
// builds it and written through a LogWriter, as `posterctl lb` runs (JSON,
// a timestamp, the component field); "off" is the same call with the line
// below the logger's level; "direct" is the line through AccessLog, as
// `posterctl lb` writes it off a terminal in JSON.
func BenchmarkAccessLine(b *testing.B) {
	line := accessLine{method: []byte("GET"), path: []byte("/api/posts/1"), status: 200, backend: "127.0.0.1:40001",
		backendField: backendField("127.0.0.1:40001"), idPlain: true, attempts: 1, d: 1234 * time.Microsecond, id: []byte("0123456789abcdef0123456789abcdef"),
		remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 54321}}
	for _, lvl := range []zerolog.Level{zerolog.InfoLevel, zerolog.WarnLevel} {
		name := map[zerolog.Level]string{zerolog.InfoLevel: "on", zerolog.WarnLevel: "off"}[lvl]
		b.Run(name, func(b *testing.B) {
			lw := NewLogWriter(io.Discard, 100*time.Millisecond)
			defer lw.Close()
			log := zerolog.New(lw).Level(lvl).With().Timestamp().Str("component", "lb").Logger()
			b.ReportAllocs()
			for b.Loop() {
				logAccess(log.Info(), &line)
			}
		})
	}
	b.Run("direct", func(b *testing.B) {
		lw := NewLogWriter(io.Discard, 100*time.Millisecond)
		defer lw.Close()
		p := lineProxy(zerolog.New(lw), newAccessLog(lw, "2006-01-02T15:04:05.000Z07:00", "component", "lb"))
		// Each request has its exchange, which waits in the log until its
		// line is formatted; more of them than a write-out holds.
		xs := make([]*exchange, 1024)
		conn := &limitedConn{} // one client's keep-alive connection
		for i := range xs {
			x := exchangeFor(p, "GET", string(line.path), line.remote, conn)
			x.status, x.backend, x.attempts, x.id, x.idOurs = line.status, NewBackend(line.backend, 0), line.attempts, line.id, true
			xs[i] = x
		}
		b.ReportAllocs()
		// The balancer reads the clock for its own reasons; a line gets
		// that time. 50 µs apart, as at 20,000 requests a second, most
		// lines share their millisecond's formatted time.
		now := time.Now()
		i := 0
		for b.Loop() {
			now = now.Add(50 * time.Microsecond)
			x := xs[i%len(xs)]
			x.start = now.Add(-line.d)
			p.access.hold(x, now)
			i++
		}
	})
}
