package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadReq appends the raw bytes of request number i to buf. Requests are
// written by hand so that the load generator, which shares the machine with
// the backend, spends as little CPU as it can.
type loadReq func(buf []byte, i int64) []byte

// endpoint is one kind of request the CPU benchmark drives, with the status
// each answer must have.
type endpoint struct {
	name string
	req  loadReq
	want int
}

// getReq is a GET of path with an optional cookie.
func getReq(path, cookie string) loadReq {
	head := "GET " + path + " HTTP/1.1\r\nHost: bench\r\n"
	if cookie != "" {
		head += "Cookie: " + cookie + "\r\n"
	}
	head += "\r\n"
	return func(buf []byte, _ int64) []byte { return append(buf, head...) }
}

// postReq is a POST /api/posts with the session cookie, and with a fresh
// Idempotency-Key per request when idem is set.
func postReq(cookie string, idem bool) loadReq {
	body := `{"content":"a benchmark post of moderate length, like most posts are"}`
	head := "POST /api/posts HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nCookie: " +
		cookie + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	return func(buf []byte, i int64) []byte {
		buf = append(buf, head...)
		if idem {
			buf = append(buf, "Idempotency-Key: "...)
			buf = append(buf, run...)
			buf = append(buf, '-')
			buf = strconv.AppendInt(buf, i, 10)
			buf = append(buf, "\r\n"...)
		}
		buf = append(buf, "\r\n"...)
		return append(buf, body...)
	}
}

// mixed sends post for every tenth request and get for the others.
func mixed(get, post loadReq) loadReq {
	return func(buf []byte, i int64) []byte {
		if i%10 == 9 {
			return post(buf, i)
		}
		return get(buf, i)
	}
}

// mixedWant accepts the statuses of both halves of a mixed load.
const mixedWant = -1

// loadResult is what one bounded run of the load measured.
type loadResult struct {
	requests int64
	elapsed  time.Duration
	failures int64
	firstErr string
	p50, p99 time.Duration
}

// driveLoad sends n requests over conns keep-alive connections, spread
// over addrs, one at a time per connection, and counts and times the
// answers.
func driveLoad(addrs []string, conns int, n int64, ep endpoint) loadResult {
	var (
		next, done, failures atomic.Int64
		errOnce              sync.Once
		firstErr             string
		wg                   sync.WaitGroup
	)
	fail := func(msg string) {
		failures.Add(1)
		errOnce.Do(func() { firstErr = msg })
	}
	start := time.Now()
	lat := make([][]time.Duration, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addrs[i%len(addrs)])
			if err != nil {
				fail(err.Error())
				return
			}
			defer c.Close()
			br := bufio.NewReaderSize(c, 64<<10)
			var buf []byte
			for {
				k := next.Add(1)
				if k > n {
					return
				}
				buf = ep.req(buf[:0], k)
				sent := time.Now()
				if _, err := c.Write(buf); err != nil {
					fail(err.Error())
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					fail(err.Error())
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					fail(err.Error())
					return
				}
				ok := resp.StatusCode == ep.want ||
					ep.want == mixedWant && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated)
				if !ok {
					fail(fmt.Sprintf("%s: status %d", ep.name, resp.StatusCode))
				}
				lat[i] = append(lat[i], time.Since(sent))
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	res := loadResult{requests: done.Load(), elapsed: time.Since(start), failures: failures.Load(), firstErr: firstErr}
	all := slices.Concat(lat...)
	if len(all) > 0 {
		slices.Sort(all)
		res.p50, res.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	return res
}

// procCPU returns the user plus system CPU time pid has used so far, from
// /proc/<pid>/stat (Linux only; the benchmark skips elsewhere).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after it do not.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime %q %q", pid, f[11], f[12])
	}
	// USER_HZ is 100 on every Linux the project targets.
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}
