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
	out := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(out)
	p.outbound(x, out, true)
	var tried Tried
	var lastErr error
	set := p.set.load()
	for {
		b := p.pick(x, set, &tried)
		if b == nil {
			p.fail(x, fasthttp.StatusServiceUnavailable, "no backend available", lastErr)
			return
		}
		x.holding = b // pick counted the request in flight; finish releases it
		conn, err := b.conns.dialer.Dial("tcp", b.conns.addr)
		if err != nil {
			x.holding = nil
			lastErr = err
			p.attemptFailed(b, err, true)
			continue
		}
		p.switchProtocols(x, b, conn, out)
		return
	}
}

// switchProtocols sends the upgrade request on conn and, once the backend
// agrees (101), hands the client's connection and conn to tunnel; any other
// answer is relayed as it is.
func (p *Proxy) switchProtocols(x *exchange, b *Backend, conn net.Conn, out *fasthttp.Request) {
	ctx := x.ctx
	br := bufio.NewReader(conn)
	bw := bufio.NewWriter(conn)
	_ = conn.SetDeadline(time.Now().Add(b.conns.headerWait))
	err := out.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	resp := &ctx.Response
	if err == nil {
		err = readFinalHeader(&resp.Header, br, true)
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
		resp.Header.SetCanonical([]byte(canonicalRequestID), x.id)
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
