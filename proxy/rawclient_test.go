package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// rawClient is an HTTP/1.1 keep-alive client over one connection that never
// retries: net/http's Transport silently re-sends idempotent requests whose
// reused connection failed (TRAPS.md), which would hide the very failures the
// failover test counts. A failed request is reported as failed and the next
// one dials afresh. It is also lean, so the benchmark's load generator costs
// little and the same for the direct and the proxied run.
type rawClient struct {
	addr    string
	timeout time.Duration
	conn    net.Conn
	br      *bufio.Reader
}

type rawResponse struct {
	status  int
	backend []byte // X-Backend, when sent
	body    []byte
}

func (c *rawClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// do sends one complete request (bytes ready to write) and reads the answer,
// which must have a Content-Length. resp's buffers are reused.
func (c *rawClient) do(req []byte, resp *rawResponse) error {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, c.timeout)
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		c.conn = conn
		if c.br == nil {
			c.br = bufio.NewReaderSize(conn, 8<<10)
		} else {
			c.br.Reset(conn)
		}
	}
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		c.close()
		return err
	}
	if _, err := c.conn.Write(req); err != nil {
		c.close()
		return fmt.Errorf("write: %w", err)
	}
	if err := c.read(resp); err != nil {
		c.close()
		return err
	}
	return nil
}

var (
	hdrContentLength = []byte("content-length:")
	hdrBackend       = []byte("x-backend:")
	hdrConnection    = []byte("connection:")
)

func (c *rawClient) read(resp *rawResponse) error {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("read status: %w", err)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return fmt.Errorf("bad status line %q", line)
	}
	resp.status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return fmt.Errorf("bad status line %q", line)
	}
	resp.backend = resp.backend[:0]
	length, closeAfter := -1, false
	for {
		line, err = c.br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read header: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		switch {
		case hasPrefixFold(line, hdrContentLength):
			length, err = strconv.Atoi(string(bytes.TrimSpace(line[len(hdrContentLength):])))
			if err != nil {
				return fmt.Errorf("bad header %q", line)
			}
		case hasPrefixFold(line, hdrBackend):
			resp.backend = append(resp.backend, bytes.TrimSpace(line[len(hdrBackend):])...)
		case hasPrefixFold(line, hdrConnection):
			closeAfter = bytes.EqualFold(bytes.TrimSpace(line[len(hdrConnection):]), []byte("close"))
		}
	}
	if length < 0 {
		return errors.New("response without Content-Length")
	}
	if cap(resp.body) < length {
		resp.body = make([]byte, length)
	}
	resp.body = resp.body[:length]
	if _, err := io.ReadFull(c.br, resp.body); err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if closeAfter {
		c.close()
	}
	return nil
}

func hasPrefixFold(s, prefix []byte) bool {
	return len(s) >= len(prefix) && bytes.EqualFold(s[:len(prefix)], prefix)
}
