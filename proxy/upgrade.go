package proxy

import (
	"bufio"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// upgrade passes a protocol switch (WebSocket) through: the request goes to
// a backend on a connection of its own, and once the backend answers 101 the
// client's connection is hijacked and bytes flow both ways until either side
// closes. Only a failure to connect is retried: after the request was sent,
// the backend may have acted on it.
func (p *Proxy) upgrade(x *exchange) {
	ctx := x.ctx
	in := &ctx.Request.Header
	out := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(out)
	in.CopyTo(&out.Header)
	stripRequestHopByHop(&out.Header, true)
	out.Header.SetNoDefaultContentType(true)
	var scratch [256]byte
	setForwarded(&out.Header, in, ctx.RemoteAddr(), scratch[:0])
	out.Header.Set("X-Request-Id", x.id)

	var tried Tried
	var lastErr error
	pool := p.pool.load()
	for {
		b := p.selector.Select(pool, tried)
		if b == nil {
			p.fail(x, fasthttp.StatusServiceUnavailable, "no backend available", lastErr)
			return
		}
		tried = tried.With(b)
		x.attempts++
		x.backend = b
		x.holding = b // Select counted the request in flight; finish releases it
		b.requests.Add(1)
		u := b.up
		conn, err := u.dialer.Dial("tcp", u.addr)
		if err != nil {
			b.inFlight.Add(-1)
			x.holding = nil
			lastErr = err
			b.recordFailure(err)
			if tr := b.Eject(err); tr != NoChange {
				p.metrics.ejections.WithLabelValues(b.addr).Inc()
				p.onChange(b, tr, err, "request")
			}
			continue
		}
		br := bufio.NewReader(conn)
		bw := bufio.NewWriter(conn)
		_ = conn.SetDeadline(time.Now().Add(u.headerWait))
		if err = out.Write(bw); err == nil {
			err = bw.Flush()
		}
		resp := &ctx.Response
		if err == nil {
			err = resp.Header.Read(br)
		}
		if err != nil {
			conn.Close()
			b.recordFailure(err)
			p.fail(x, fasthttp.StatusBadGateway, "backend failed during the upgrade", err)
			return
		}
		_ = conn.SetDeadline(time.Time{})
		x.status = resp.StatusCode()
		if x.status != fasthttp.StatusSwitchingProtocols {
			// Refused: relay the answer as it is, then drop the connection.
			resp.Header.ResetConnectionClose()
			stripResponseHopByHop(&resp.Header)
			resp.Header.Set("X-Request-Id", x.id)
			err := resp.ReadBody(br, 1<<20)
			conn.Close()
			if err != nil {
				p.fail(x, fasthttp.StatusBadGateway, "backend failed during the upgrade", err)
				return
			}
			x.finish()
			return
		}
		b.recordSuccess()
		head := append([]byte(nil), resp.Header.Header()...)
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(func(client net.Conn) {
			defer x.finish() // the access line covers the whole session
			tunnel(client, conn, br, head)
		})
		return
	}
}

// tunnel relays between the client and the backend until either closes. It
// is run by fasthttp on the hijacked connection's goroutine and owns the one
// extra goroutine it starts, waiting for it before returning.
func tunnel(client, backend net.Conn, br *bufio.Reader, head []byte) {
	defer backend.Close()
	if _, err := client.Write(head); err != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(backend, client)
		// The client is done sending: tell the backend, keep reading.
		if tc, ok := backend.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		} else {
			backend.Close()
		}
	}()
	_, _ = io.Copy(client, br) // buffered bytes first, then the connection
	client.Close()
	backend.Close()
	wg.Wait()
}
