package proxy

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/posterctl/posterctl/internal/clitest"
)

func TestUpstreamPool(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	cfg := &Config{}
	cfg.SetDefaults()
	u := newConnPool(l.Addr().String(), cfg)
	defer u.close()

	c1, err := u.get()
	if err != nil {
		t.Fatal(err)
	}
	server1 := <-accepted
	u.put(c1)
	if c, _ := u.get(); c != c1 {
		t.Fatal("a live idle connection was not reused")
	} else {
		u.put(c)
	}

	// The backend closes the idle connection: the pool must notice before
	// anything is written, and dial afresh.
	server1.Close()
	clitest.Eventually(t, 5*time.Second, func() error {
		if c1.alive() {
			return errors.New("closed connection still looks alive")
		}
		return nil
	})
	c2, err := u.get()
	if err != nil || c2 == c1 {
		t.Fatalf("got %p (first was %p), err %v: want a new connection", c2, c1, err)
	}
	server2 := <-accepted
	defer server2.Close()
	u.put(c2)

	t.Run("DialError", func(t *testing.T) {
		dead := newConnPool(deadAddr(t), cfg)
		_, err := dead.get()
		var de *errDial
		if !errors.As(err, &de) {
			t.Fatalf("err %v, want a dial error", err)
		}
	})
}

// get is getAt now, with the peek: a pooled connection is checked first.
func (u *connPool) get() (*upConn, error) { return u.getAt(time.Now(), true) }
