//go:build linux

package sockio

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Conn reads and writes a socket with raw read(2) and write(2) under the
// poller's readiness waits (syscall.RawConn), instead of the runtime's
// system-call path. The socket is non-blocking, so a raw call cannot block.
// The runtime wakes its monitor thread (sysmon) on the first system call
// after every moment the process had nothing to run, and sysmon then polls
// for a millisecond or more; a balancer on a busy machine goes idle thousands
// of times a second, so raw calls save wake-ups and context switches.
// Deadlines still apply: the waits are the poller's.
//
// Every call that needs the descriptor gets it from the RawConn at that
// moment; none is kept, so a closed socket's number, reused by another file,
// is never touched.
type Conn struct {
	conn        net.Conn
	rc          syscall.RawConn // nil: not a socket Go's poller manages
	raw         bool            // rc is non-blocking: raw reads and writes
	read, write half            // separate, as a tunnel reads and writes at once

	peeked  Peeked
	peekBuf [1]byte
	peekFn  func(fd uintptr) // made at the first peek, so later ones do not allocate

	flush    func() error
	sendFn   func(fd uintptr) bool
	sendDone bool
	sendErr  error
}

// half is one direction's call state, with its callback made once.
type half struct {
	buf []byte // the caller's buffer during a call
	n   int
	err syscall.Errno
	fn  func(fd uintptr) bool
}

// Init prepares c for conn and reports whether reads and writes take the
// raw path; when not, they go through conn as usual.
func (c *Conn) Init(conn net.Conn) bool {
	c.conn = conn
	rc := rawConn(conn)
	if rc == nil {
		return false
	}
	c.rc = rc
	// Sockets Go accepts or dials are non-blocking; one that is not (a
	// descriptor shared with a process that changed it) keeps the
	// runtime's path, where a blocking call cannot stall the scheduler.
	nonBlocking := false
	if err := rc.Control(func(fd uintptr) {
		flags, _, errno := syscall.RawSyscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		nonBlocking = errno == 0 && flags&syscall.O_NONBLOCK != 0
	}); err != nil || !nonBlocking {
		return false
	}
	c.raw = true
	c.read.fn = func(fd uintptr) bool { return c.read.call(syscall.SYS_READ, fd) }
	c.write.fn = func(fd uintptr) bool { return c.write.call(syscall.SYS_WRITE, fd) }
	c.sendFn = c.flushThenWait
	return true
}

// call makes one raw call; false asks the poller to wait for readiness.
func (h *half) call(trap, fd uintptr) bool {
	for {
		n, _, errno := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(unsafe.SliceData(h.buf))), uintptr(len(h.buf)))
		switch errno {
		case 0:
			h.n = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		h.err = errno
		return true
	}
}

func (c *Conn) Read(p []byte) (int, error) {
	if !c.raw {
		return c.conn.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	h := &c.read
	h.buf, h.n, h.err = p, 0, 0
	err := c.rc.Read(h.fn)
	h.buf = nil
	switch {
	case err != nil:
		return 0, err
	case h.err != 0:
		return 0, c.opError("read", h.err)
	case h.n == 0:
		return 0, io.EOF
	}
	return h.n, nil
}

func (c *Conn) Write(p []byte) (int, error) {
	if !c.raw {
		return c.conn.Write(p)
	}
	h := &c.write
	total := 0
	for len(p) > 0 {
		h.buf, h.n, h.err = p, 0, 0
		err := c.rc.Write(h.fn)
		h.buf = nil
		total += h.n
		p = p[h.n:]
		switch {
		case err != nil:
			return total, err
		case h.err != 0:
			return total, c.opError("write", h.err)
		case h.n == 0:
			return total, io.ErrShortWrite
		}
	}
	return total, nil
}

func (c *Conn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.conn.LocalAddr(), Addr: c.conn.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// Peek looks at the socket without blocking or consuming anything.
func (c *Conn) Peek() Peeked {
	if c.rc == nil {
		return PeekUnknown
	}
	if c.peekFn == nil {
		c.peekFn = func(fd uintptr) { c.peeked = peekFd(fd, c.peekBuf[:]) }
	}
	c.peeked = PeekUnknown
	if err := c.rc.Control(c.peekFn); err != nil {
		return PeekUnknown
	}
	return c.peeked
}

// SetFlush names what FlushThenWait writes with: the caller's buffered
// writer, whose writes come back to c.
func (c *Conn) SetFlush(flush func() error) { c.flush = flush }

// FlushThenWait writes out what the flush function holds and waits, under
// the read deadline, until the answer begins to arrive. Go's poller has a
// read try first and wait only after EAGAIN, which right after sending a
// request costs a wasted system call. Here the wait is armed before the
// request goes out: RawConn.Read resets the readiness flag, then calls
// flushThenWait, which writes and asks to wait, and the poller wakes us on
// the answer. Readiness cannot be missed as long as nothing could have been
// answered before this write, which the caller must make sure of (no byte
// of the request went out earlier). A stray wake-up only costs the read
// that follows an EAGAIN. flushErr is the write's failure, waitErr the
// wait's (a deadline).
func (c *Conn) FlushThenWait() (flushErr, waitErr error) {
	if !c.raw {
		return c.flush(), nil
	}
	c.sendDone, c.sendErr = false, nil
	err := c.rc.Read(c.sendFn)
	if c.sendErr != nil {
		return c.sendErr, nil
	}
	return nil, err
}

func (c *Conn) flushThenWait(uintptr) bool {
	if c.sendDone {
		return true // readable: the answer (or an end) is there
	}
	c.sendDone = true
	c.sendErr = c.flush()
	return c.sendErr != nil
}

// peekFd is the one peek: recv(2) with MSG_PEEK|MSG_DONTWAIT, which never
// blocks and leaves what it sees in place.
func peekFd(fd uintptr, buf []byte) Peeked {
	for {
		n, errno := recvPeek(fd, buf)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return PeekEmpty
		case errno != 0:
			return PeekUnknown
		case n == 0:
			return PeekClosed
		}
		return PeekData
	}
}

// peekAny peeks at a connection that is not a ClientConn.
func peekAny(conn net.Conn) Peeked {
	rc := rawConn(conn)
	if rc == nil {
		return PeekUnknown
	}
	got := PeekUnknown
	var buf [1]byte
	if err := rc.Control(func(fd uintptr) { got = peekFd(fd, buf[:]) }); err != nil {
		return PeekUnknown
	}
	return got
}

// rawConn is conn's socket as the poller holds it; nil for anything else.
func rawConn(conn net.Conn) syscall.RawConn {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}
