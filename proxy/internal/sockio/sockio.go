// Package sockio is the balancer's one door to raw sockets: reads and writes
// under the poller's readiness waits, a write that arms the wait for the
// answer before it goes out, lazy read deadlines for client connections, and
// a non-blocking peek that tells an idle socket from a closed one. Linux gets
// raw system calls (sockio_linux.go); other platforms get plain net.Conn I/O
// and a peek that reports it cannot tell (sockio_other.go), so the balancer
// builds and runs everywhere and only Linux takes the shortcuts.
package sockio

import "net"

// Peeked is what a peek at a socket saw.
type Peeked int

const (
	// PeekUnknown: the socket could not be looked at (not a socket, closed
	// here, or a platform without the call).
	PeekUnknown Peeked = iota
	// PeekEmpty: nothing to read, and the peer has not closed.
	PeekEmpty
	// PeekData: bytes are waiting.
	PeekData
	// PeekClosed: the peer closed its side (an end of stream waits).
	PeekClosed
)

// PeekConn peeks at conn without blocking or consuming anything.
func PeekConn(conn net.Conn) Peeked {
	if c, ok := conn.(*ClientConn); ok {
		return c.io.Peek()
	}
	return peekAny(conn)
}
