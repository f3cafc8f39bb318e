package proxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/posterctl/posterctl/proxy/internal/sockio"
)

// A drain (SIGTERM: `restart lb` hands the sockets to the next balancer,
// `down` stops) must not close a kept-alive connection that may carry a
// request on the wire: the client gets EOF or a reset for a request nobody
// saw, and may not retry it (TRAPS.md). fasthttp's Shutdown closes every
// connection that is idle at that instant, which is exactly such a loss for
// a busy client whose next request is in flight. So the drain is ours:
//
//   - the listener closes (the next balancer, or the supervisor, keeps the
//     socket), and every response from then on says Connection: close, so
//     each busy connection ends cleanly after its next answer;
//   - a connection is closed only once it has stayed idle for drainQuiet
//     with nothing waiting in its receive buffer. A busy client's next
//     request follows its previous answer within a few milliseconds, so a
//     connection silent for drainQuiet belongs to a client that is not
//     sending; that is the same bet any idle timeout makes. Much longer
//     would hold `down` and hand-overs up for idle browsers, much shorter
//     would catch clients that pause between requests;
//   - the drain ends when no connection is left, or when the grace ends:
//     then fasthttp's Shutdown closes what remains.
const (
	drainQuiet = 300 * time.Millisecond
	drainTick  = 25 * time.Millisecond
)

// clientConns follows each client connection's state for the drain. A
// connection's word counts its transitions: odd while idle (waiting for a
// request), even while a request is being served.
type clientConns struct {
	draining atomic.Bool
	conns    sync.Map // net.Conn -> *clientState
}

type clientState struct {
	word atomic.Uint64
	// The drain's own: the word it last saw, and since when.
	seen   uint64
	seenAt time.Time

	// The access lines' remote field, with the client's address: it never
	// changes, so it is formatted at the connection's first line. Only the
	// goroutine that serves the connection's requests uses it.
	remoteField []byte
}

// connState is fasthttp's ConnState hook. It runs twice a request, so a
// connection admitted by the limiter carries its state itself, which spares
// those two a map lookup; the map still lists every connection for the
// drain.
func (cc *clientConns) connState(c net.Conn, st fasthttp.ConnState) {
	switch st {
	case fasthttp.StateNew:
		s := carriedState(c)
		if s == nil {
			s = &clientState{}
		}
		s.word.Store(1)
		cc.conns.Store(c, s)
	case fasthttp.StateActive, fasthttp.StateIdle:
		if s := carriedState(c); s != nil {
			s.word.Add(1)
		} else if v, ok := cc.conns.Load(c); ok {
			v.(*clientState).word.Add(1)
		}
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		cc.conns.Delete(c)
	}
}

// carriedState is the state a connection from limitListener carries, under
// the sockio wrapper if there is one; nil for any other connection.
func carriedState(c net.Conn) *clientState {
	if cc, ok := c.(*sockio.ClientConn); ok {
		c = cc.Conn
	}
	switch lc := c.(type) {
	case *limitedTCPConn:
		return &lc.state
	case *limitedConn:
		return &lc.state
	}
	return nil
}

// handle serves a request; once draining, its answer closes the connection
// (a protocol switch keeps its own Connection header).
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	s.proxy.Handle(ctx)
	if s.clients.draining.Load() && !ctx.Hijacked() {
		ctx.SetConnectionClose()
	}
}

// drainClients stops accepting and closes the client connections as the
// comment at the top says; it returns when none is left or ctx ends.
func (s *Server) drainClients(ctx context.Context) error {
	s.clients.draining.Store(true)
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	tick := time.NewTicker(drainTick)
	defer tick.Stop()
	for s.closeQuietClients(time.Now()) > 0 {
		select {
		case <-ctx.Done():
			return s.shutdownClients(ctx)
		case <-tick.C:
		}
	}
	return s.shutdownClients(ctx)
}

// closeQuietClients closes the connections idle for drainQuiet and reports
// how many are still open.
func (s *Server) closeQuietClients(now time.Time) int {
	open := 0
	s.clients.conns.Range(func(k, v any) bool {
		open++
		st := v.(*clientState)
		w := st.word.Load()
		if w&1 == 0 || w != st.seen || st.seenAt.IsZero() {
			st.seen, st.seenAt = w, now
			return true
		}
		c := k.(net.Conn)
		if now.Sub(st.seenAt) < drainQuiet || peekRaw(c) == sockio.PeekData {
			return true
		}
		_ = c.Close()
		return true
	})
	return open
}

// peekRaw peeks at the socket under c without touching c's own peek
// buffer, which the connection's serving goroutine may be using.
func peekRaw(c net.Conn) sockio.Peeked {
	if cc, ok := c.(*sockio.ClientConn); ok {
		return sockio.PeekConn(cc.Conn)
	}
	return sockio.PeekConn(c)
}

// shutdownClients lets fasthttp close what is left and wait for its
// connection goroutines; the listener it closes again is closed already.
func (s *Server) shutdownClients(ctx context.Context) error {
	err := s.srv.ShutdownWithContext(ctx)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
