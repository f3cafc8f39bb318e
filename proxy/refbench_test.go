package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v3/process"

	"github.com/posterctl/posterctl/internal/clitest"
)

// The reference balancers: nginx and HAProxy from the distribution, set up to
// do what `posterctl lb` does (round robin over the same two backends,
// keep-alive pools to them, X-Forwarded-*, a request id, an access line per
// request) so the benchmark compares like with like. They are optional: a
// machine without them still runs the benchmark, and says what it skipped.
const (
	nginxBin   = "/usr/sbin/nginx"
	haproxyBin = "/usr/sbin/haproxy"
	wrkBin     = "/usr/bin/wrk"
)

// benchEnvAccessLog set to "off" turns the access log off in all three
// balancers alike; by default all three write one line per request.
const benchEnvAccessLog = "POSTERCTL_BENCH_ACCESSLOG"

// startNginx runs nginx in front of the backends, with as many workers as
// cores (like GOMAXPROCS for ours), a keep-alive pool per upstream larger than
// the client count, and a buffered access log (ours is batched too).
func startNginx(b *testing.B, logOn bool, backends ...string) (addr string, cpu func() float64) {
	dir := b.TempDir()
	port := clitest.FreePort(b)
	addr = "127.0.0.1:" + strconv.Itoa(port)
	var servers strings.Builder
	for _, a := range backends {
		fmt.Fprintf(&servers, "\t\tserver %s max_fails=1 fail_timeout=1s;\n", a)
	}
	accessLog := "off"
	if logOn {
		accessLog = filepath.Join(dir, "access.log") + " bench buffer=64k flush=100ms"
	}
	conf := fmt.Sprintf(`worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
	log_format bench '$remote_addr "$request" $status $upstream_addr $request_time $request_id';
	access_log %[2]s;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	keepalive_requests 1000000;
	keepalive_timeout 120s;
	client_header_timeout 10s;
	large_client_header_buffers 4 64k;
	map $http_x_request_id $reqid { "" $request_id; default $http_x_request_id; }
	upstream posters {
%[3]s		keepalive 128;
		keepalive_requests 1000000;
		keepalive_timeout 90s;
	}
	server {
		listen %[4]s;
		location / {
			proxy_pass http://posters;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host $host;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Proto $scheme;
			proxy_set_header X-Forwarded-Host $host;
			proxy_set_header Forwarded "for=$remote_addr;host=$host;proto=$scheme";
			proxy_set_header X-Request-Id $reqid;
			add_header X-Request-Id $reqid always;
			proxy_connect_timeout 1s;
			proxy_read_timeout 30s;
			proxy_next_upstream error timeout;
		}
	}
}
`, dir, accessLog, servers.String(), addr)
	cfg := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	p := startRefProcess(b, "nginx", addr, exec.Command(nginxBin, "-p", dir, "-c", cfg, "-g", "daemon off;"))
	return addr, p
}

// startHAProxy runs HAProxy in front of the backends: one process with a
// thread per core (its default), connection reuse to the backends, health
// checks like ours, and an HTTP log line per request to stdout (a file here;
// HAProxy has no buffered file log, so each line is a write).
func startHAProxy(b *testing.B, logOn bool, backends ...string) (addr string, cpu func() float64) {
	dir := b.TempDir()
	port := clitest.FreePort(b)
	addr = "127.0.0.1:" + strconv.Itoa(port)
	var servers strings.Builder
	for i, a := range backends {
		fmt.Fprintf(&servers, "\tserver s%d %s check inter 1s fall 2 rise 2\n", i, a)
	}
	logs := "\tlog stdout format raw local0\n\toption httplog\n"
	if !logOn {
		logs = ""
	}
	conf := fmt.Sprintf(`global
	maxconn 4096
defaults
	mode http
%[1]s	timeout connect 1s
	timeout client 120s
	timeout server 30s
	timeout http-request 10s
	timeout http-keep-alive 120s
	option forwardfor
	option redispatch
	retries 1
	http-reuse always
frontend fe
	bind %[2]s
	unique-id-format %%[uuid()]
	http-request set-header X-Request-Id %%[unique-id] unless { req.hdr(x-request-id) -m found }
	http-request set-header X-Forwarded-Proto http
	http-request set-header X-Forwarded-Host %%[req.hdr(host)]
	http-request set-header Forwarded for=%%[src]\;host=%%[req.hdr(host)]\;proto=http
	http-after-response set-header X-Request-Id %%[unique-id]
	default_backend be
backend be
	balance roundrobin
	option httpchk GET /healthz
%[3]s`, logs, addr, servers.String())
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	p := startRefProcess(b, "haproxy", addr, exec.Command(haproxyBin, "-f", cfg, "-db"))
	return addr, p
}

// startRefProcess starts a reference balancer in its own process group,
// waits until addr accepts, and stops the group by the leader's pid at
// cleanup. The returned function sums the CPU of the process and its
// children (nginx's workers).
func startRefProcess(b *testing.B, name, addr string, cmd *exec.Cmd) func() float64 {
	logf, err := os.Create(filepath.Join(b.TempDir(), name+".out"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	b.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		logf.Close()
	})
	clitest.Eventually(b, 10*time.Second, func() error {
		select {
		case <-done:
			out, _ := os.ReadFile(logf.Name())
			b.Fatalf("%s exited: %s", name, out)
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return func() float64 { return treeCPU(int32(cmd.Process.Pid)) }
}

// treeCPU is the user+system CPU seconds of a process and its children
// (nginx's workers), to the nanosecond where the platform tells it.
func treeCPU(pid int32) float64 {
	p, err := process.NewProcess(pid)
	if err != nil {
		return 0
	}
	total := 0.0
	add := func(p *process.Process) {
		if s, ok := processCPU(p.Pid); ok {
			total += s
		} else if t, err := p.Times(); err == nil {
			total += t.User + t.System
		}
	}
	add(p)
	kids, _ := p.Children()
	for _, k := range kids {
		add(k)
	}
	return total
}

// wrkGen runs wrk (C, epoll, one thread per core) as the load generator for
// a given time per slice: a second opinion on the Go generator, whose cost
// shares the same two cores.
type wrkGen struct {
	threads int
}

func (g wrkGen) run(b *testing.B, addr string, kind benchRequest, d time.Duration) loadResult {
	args := []string{"-t", strconv.Itoa(g.threads), "-c", "64", "-d", strconv.Itoa(max(1, int(d.Seconds()))) + "s",
		"--latency", "--timeout", "10s",
		"-H", "Host: poster", "-H", "User-Agent: posterctl-bench", "-H", "Accept: application/json"}
	path := "/api/posts/1"
	if kind.method == "POST" {
		script := filepath.Join(b.TempDir(), "post.lua")
		lua := fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = %q\nwrk.headers[\"Content-Type\"] = \"application/json\"\n", kind.body)
		if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
			b.Fatal(err)
		}
		args, path = append(args, "-s", script), "/api/posts"
	}
	args = append(args, "http://"+addr+path)
	cmd := exec.Command(wrkBin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		b.Fatalf("wrk %s: %v\n%s", addr, err, out.String())
	}
	r, err := parseWrk(out.String())
	if err != nil {
		b.Fatalf("wrk %s: %v\n%s", addr, err, out.String())
	}
	r.genCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	return r
}

// parseWrk reads wrk's --latency report. A request that failed (socket
// error, non-2xx) fails the run: a fast error is not throughput.
func parseWrk(out string) (loadResult, error) {
	var r loadResult
	var p50, p99 time.Duration
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "50%":
			p50, _ = time.ParseDuration(f[1])
		case len(f) == 2 && f[0] == "99%":
			p99, _ = time.ParseDuration(f[1])
		case len(f) >= 5 && f[1] == "requests" && f[2] == "in":
			n, err1 := strconv.Atoi(f[0])
			d, err2 := time.ParseDuration(strings.TrimSuffix(f[3], ","))
			if err1 != nil || err2 != nil {
				return r, fmt.Errorf("bad line %q", sc.Text())
			}
			r.n, r.elapsed = n, d
		case len(f) > 0 && f[0] == "Socket":
			return r, fmt.Errorf("socket errors: %s", sc.Text())
		case len(f) > 0 && f[0] == "Non-2xx":
			return r, fmt.Errorf("failed responses: %s", sc.Text())
		}
	}
	if r.n == 0 || p50 == 0 {
		return r, fmt.Errorf("no figures in wrk's report")
	}
	// wrk gives percentiles, not samples: the summary takes the median of
	// each slice's.
	r.p50s, r.p99s = []time.Duration{p50}, []time.Duration{p99}
	return r, nil
}
