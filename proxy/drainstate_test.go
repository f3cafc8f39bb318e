package proxy

import (
	"net"
	"testing"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/posterctl/posterctl/proxy/internal/sockio"
)

// TestConnStateCarried: a connection accepted as the server accepts them
// counts its transitions in the state it carries, which is the one the
// drain finds in its list; any other connection is counted in the list.
func TestConnStateCarried(t *testing.T) {
	cfg := Config{}
	cfg.SetDefaults()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := sockio.Listener{Listener: limitListener{raw, newConnLimiter(&cfg, zerolog.Nop())}}
	defer ln.Close()
	client, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	served, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer served.Close()
	other, peer := net.Pipe()
	defer other.Close()
	defer peer.Close()

	var cc clientConns
	for _, c := range []net.Conn{served, other} {
		for _, st := range []fasthttp.ConnState{fasthttp.StateNew, fasthttp.StateActive, fasthttp.StateIdle, fasthttp.StateActive} {
			cc.connState(c, st)
		}
		v, ok := cc.conns.Load(c)
		if !ok {
			t.Fatalf("%T not listed", c)
		}
		if w := v.(*clientState).word.Load(); w != 4 {
			t.Fatalf("%T: word %d after three transitions, want 4", c, w)
		}
		if carried := carriedState(c); (c == served) != (carried != nil) || carried != nil && carried != v.(*clientState) {
			t.Fatalf("%T: carried state %p, listed %p", c, carried, v)
		}
		cc.connState(c, fasthttp.StateClosed)
		if _, ok := cc.conns.Load(c); ok {
			t.Fatalf("%T listed after its close", c)
		}
	}
}
