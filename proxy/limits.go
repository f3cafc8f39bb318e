package proxy

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// connLimiter caps client connections, in all (MaxConns) and per client
// address (MaxConnsPerClient). The check is made as a connection is
// accepted, before anything is read: a connection over a cap is answered
// 503 and closed off the accept loop, which goes straight back to
// accepting, so a flood delays nobody already connected.
//
// A connection from a trusted proxy (Config.TrustedProxies) carries many
// clients: it counts only in the total, and each request on it counts, while
// it is handled, against the cap of the client its X-Forwarded-For names.
type connLimiter struct {
	max, perClient int // perClient <= 0: no per-client cap
	trusted        func(netip.Addr) bool
	log            zerolog.Logger

	mu       sync.Mutex
	total    int
	byClient map[netip.Addr]int

	// Refusals under way, each in a goroutine of its own that wg waits for;
	// beyond maxRefusing, a connection is closed without an answer.
	refusing atomic.Int64
	wg       sync.WaitGroup
	refused  atomic.Uint64
	lastLog  atomic.Int64 // unix nanoseconds of the last refusal logged
}

const (
	maxRefusing = 256
	// refuseLinger is how long a refused connection may take to read its
	// answer.
	refuseLinger = time.Second
)

func newConnLimiter(cfg *Config, log zerolog.Logger) *connLimiter {
	l := &connLimiter{max: cfg.MaxConns, perClient: cfg.MaxConnsPerClient,
		log: log, byClient: make(map[netip.Addr]int)}
	// A front proxy's X-Forwarded-For names the real client, which the
	// per-client cap then counts instead of the proxy.
	if len(cfg.TrustedProxies) > 0 {
		tr := newTrust(cfg)
		l.trusted = tr.trusts
	}
	return l
}

// limitListener is the listener the server accepts from.
type limitListener struct {
	net.Listener
	l *connLimiter
}

// Accept returns the next connection within the caps; the ones over a cap
// are handed to a refusal and never returned.
func (ln limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if conn := ln.l.admit(c); conn != nil {
			return conn, nil
		}
	}
}

// admit counts c in, or refuses it and returns nil.
func (l *connLimiter) admit(c net.Conn) net.Conn {
	client := peerAddr(c.RemoteAddr())
	perClient := client.IsValid() && l.perClient > 0 && (l.trusted == nil || !l.trusted(client))
	var msg string
	l.mu.Lock()
	switch {
	case l.total >= l.max:
		msg = "too many connections"
	case perClient && l.byClient[client] >= l.perClient:
		msg = "too many connections from this address"
	default:
		l.total++
		if perClient {
			l.byClient[client]++
		}
	}
	l.mu.Unlock()
	if msg != "" {
		l.refuse(c, client, msg)
		return nil
	}
	// Kept a *net.TCPConn underneath, so that sockio still finds the socket.
	if tc, ok := c.(*net.TCPConn); ok {
		return &limitedTCPConn{TCPConn: tc, slot: slot{l: l, client: client, perClient: perClient}}
	}
	return &limitedConn{Conn: c, slot: slot{l: l, client: client, perClient: perClient}}
}

// release gives back what admit (or acquireForwarded) counted.
func (l *connLimiter) release(client netip.Addr, perClient, inTotal bool) {
	l.mu.Lock()
	if inTotal {
		l.total--
	}
	if perClient {
		if n := l.byClient[client] - 1; n > 0 {
			l.byClient[client] = n
		} else {
			delete(l.byClient, client)
		}
	}
	l.mu.Unlock()
}

// slot is a connection's place under the caps, given back once at Close.
type slot struct {
	l         *connLimiter
	client    netip.Addr
	perClient bool
	freed     atomic.Bool
}

func (s *slot) free() {
	if s.freed.CompareAndSwap(false, true) {
		s.l.release(s.client, s.perClient, true)
	}
}

type limitedTCPConn struct {
	*net.TCPConn
	slot  slot
	state clientState // see clientConns.connState
}

func (c *limitedTCPConn) Close() error {
	c.slot.free()
	return c.TCPConn.Close()
}

type limitedConn struct {
	net.Conn
	slot  slot
	state clientState // see clientConns.connState
}

func (c *limitedConn) Close() error {
	c.slot.free()
	return c.Conn.Close()
}

// refuse answers c 503 in a goroutine of its own and closes it.
func (l *connLimiter) refuse(c net.Conn, client netip.Addr, msg string) {
	n := l.refused.Add(1)
	if now, last := time.Now().UnixNano(), l.lastLog.Load(); now-last >= int64(time.Second) && l.lastLog.CompareAndSwap(last, now) {
		l.log.Warn().Str("client", client.String()).Str("reason", msg).Uint64("refused_total", n).
			Int("max_conns", l.max).Int("max_conns_per_client", l.perClient).Msg("connection refused")
	}
	if l.refusing.Add(1) > maxRefusing {
		l.refusing.Add(-1)
		c.Close()
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer l.refusing.Add(-1)
		answerRefused(c, msg)
	}()
}

// answerRefused writes the 503, then half-closes and reads what the client
// still sends until it closes (or refuseLinger passes): closing a socket
// with unread bytes resets it, and a reset can destroy the answer before
// the client has read it.
func answerRefused(c net.Conn, msg string) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(refuseLinger))
	body := `{"error":"` + msg + `"}` + "\n"
	resp := "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n" +
		"Retry-After: 1\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if _, err := io.WriteString(c, resp); err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

// wait returns once every refusal has ended; the listener must be closed.
func (l *connLimiter) wait() { l.wg.Wait() }

// forwarded reports whether requests on a connection from peer are counted
// one by one (see acquireForwarded).
func (l *connLimiter) forwarded(peer net.Addr) bool {
	if l.trusted == nil || l.perClient <= 0 {
		return false
	}
	a := peerAddr(peer)
	return a.IsValid() && l.trusted(a)
}

// acquireForwarded counts a request from a trusted proxy against the cap of
// the client it names. It returns that client, invalid when none is named
// (nothing counted), and false when the client is over its cap.
func (l *connLimiter) acquireForwarded(h *fasthttp.RequestHeader) (netip.Addr, bool) {
	client := realClient(h.PeekAll("X-Forwarded-For"), l.trusted)
	if !client.IsValid() {
		return client, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byClient[client] >= l.perClient {
		return netip.Addr{}, false
	}
	l.byClient[client]++
	return client, true
}

// realClient is the last address in X-Forwarded-For that is not a trusted
// proxy's: the one the nearest trusted proxy saw. Entries to its left could
// be anything the client wrote. Invalid when there is none, or when that
// entry is not an address.
func realClient(values [][]byte, trusted func(netip.Addr) bool) netip.Addr {
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for len(v) > 0 {
			j := bytes.LastIndexByte(v, ',')
			item := bytes.TrimSpace(v[j+1:])
			v = v[:max(j, 0)]
			if len(item) == 0 {
				continue
			}
			a, err := netip.ParseAddr(string(item))
			if err != nil {
				return netip.Addr{}
			}
			if a = a.Unmap(); !trusted(a) {
				return a
			}
		}
	}
	return netip.Addr{}
}
