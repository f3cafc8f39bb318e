// Package cluster is the layout of a `posterctl up` cluster: from its
// settings to the children the supervisor runs, each with its exact command
// line, environment and inherited sockets. It decides nothing about
// processes itself; cmd/posterctl parses the settings and hands the plan to
// the supervisor. The child command lines must parse with the `lb` and
// `backend` commands of cmd/posterctl, whose tests check that they do.
package cluster

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/posterctl/posterctl/lbapi"
	"github.com/posterctl/posterctl/proxy"
	"github.com/posterctl/posterctl/supervisor"
)

// Settings are the settings of `posterctl up` that shape the cluster.
type Settings struct {
	Backends     int
	Port         int    // the LB's
	Listen       string // the LB's public address; empty: every interface
	HealthPort   int    // the LB's health, metrics and admin port
	BasePort     int    // the first backend's; the next ones count up
	DataDir      string
	DB           string // empty: <data-dir>/poster.db
	Host         string // where backends listen
	NoLB         bool
	Remote       []string // backends on other machines, as given
	RunDir       string
	Grace        time.Duration
	ReadyTimeout time.Duration
	Restart      supervisor.RestartPolicy

	// TrustedProxies are front proxies (CIDR or address) whose
	// X-Forwarded-Proto the LB passes on.
	TrustedProxies []string

	// The LB's connection caps, as its --max-conns (0: the LB's default)
	// and --per-client-max-conns (0: no per-client cap).
	MaxConns          int
	PerClientMaxConns int
}

// Validate reports the first setting that cannot work. What --db means is
// the caller's to check: the plan only passes it on.
func (s Settings) Validate() error {
	switch {
	case s.Backends < 0 || s.Backends > lbapi.MaxBackends:
		return fmt.Errorf("invalid --backends %d: want 1 to %d", s.Backends, lbapi.MaxBackends)
	case s.NoLB && len(s.Remote) > 0:
		return errors.New("--remote-backend needs the load balancer: it cannot go with --no-lb (run --no-lb on the backend machines, --remote-backend on the front one)")
	case s.Backends == 0 && s.NoLB:
		return errors.New("invalid --backends 0 with --no-lb: there would be nothing to run")
	case s.Backends == 0 && len(s.Remote) == 0:
		return errors.New("invalid --backends 0: give at least one --remote-backend, or run local backends")
	case s.MaxConns < 0:
		return fmt.Errorf("invalid --max-conns %d: want at least 1", s.MaxConns)
	case s.PerClientMaxConns < 0:
		return fmt.Errorf("invalid --per-client-max-conns %d: want 0 (no limit) or more", s.PerClientMaxConns)
	case s.Backends+len(s.Remote) > lbapi.MaxBackends:
		return fmt.Errorf("%d local and %d remote backends: the load balancer takes at most %d", s.Backends, len(s.Remote), lbapi.MaxBackends)
	}
	if net.ParseIP(s.Host) == nil && s.Host != "localhost" {
		return fmt.Errorf("invalid --host %q: want an IP address such as 127.0.0.1 or 0.0.0.0", s.Host)
	}
	if s.Listen != "" && net.ParseIP(s.Listen) == nil {
		return fmt.Errorf("invalid --listen %q: want an IP address such as 127.0.0.1, or empty for every interface", s.Listen)
	}
	if err := s.validatePorts(); err != nil {
		return err
	}
	if _, err := s.RemoteAddrs(); err != nil {
		return err
	}
	if _, err := proxy.ParseTrustedProxies(s.TrustedProxies); err != nil {
		return fmt.Errorf("invalid --trusted-proxy: %w", err)
	}
	if s.DataDir == "" {
		return errors.New("invalid --data-dir: empty")
	}
	if s.RunDir == "" {
		return errors.New("invalid --run-dir: empty")
	}
	if s.Grace < 0 {
		return fmt.Errorf("invalid --grace %v: want 0 or more", s.Grace)
	}
	if s.ReadyTimeout <= 0 {
		return fmt.Errorf("invalid --ready-timeout %v: want a positive duration", s.ReadyTimeout)
	}
	if err := s.Restart.Validate(); err != nil {
		return fmt.Errorf("invalid restart settings: %w", err)
	}
	return nil
}

func (s Settings) validatePorts() error {
	type portFlag struct {
		name string
		v    int
	}
	ports := []portFlag{{"--base-port", s.BasePort}}
	if !s.NoLB { // the LB's ports mean nothing without it
		ports = append(ports, portFlag{"--port", s.Port}, portFlag{"--health-port", s.HealthPort})
	}
	for _, p := range ports {
		if p.v < 1 || p.v > 65535 {
			return fmt.Errorf("invalid %s %d: want 1 to 65535", p.name, p.v)
		}
	}
	if last := s.BasePort + s.Backends - 1; last > 65535 {
		return fmt.Errorf("invalid --base-port %d: %d backends would need ports up to %d", s.BasePort, s.Backends, last)
	}
	if s.NoLB {
		return nil
	}
	if s.Port == s.HealthPort {
		return fmt.Errorf("--port and --health-port are both %d: they must differ", s.Port)
	}
	for _, p := range ports[1:] {
		if p.v >= s.BasePort && p.v < s.BasePort+s.Backends {
			return fmt.Errorf("%s %d collides with the backend ports %d-%d", p.name, p.v, s.BasePort, s.BasePort+s.Backends-1)
		}
	}
	return nil
}

// RemoteAddrs normalises the remote backends to host:port, as the LB does,
// and refuses duplicates and addresses of our own backends.
func (s Settings) RemoteAddrs() ([]string, error) {
	seen := map[string]bool{}
	for i := range s.Backends {
		seen[s.BackendAddr(s.BasePort+i)] = true
	}
	var out []string
	for _, raw := range s.Remote {
		a, err := proxy.ParseBackend(raw)
		if err != nil {
			return nil, fmt.Errorf("invalid --remote-backend: %w", err)
		}
		if seen[a] {
			return nil, fmt.Errorf("invalid --remote-backend %s: given twice, or it is one of the local backends", a)
		}
		seen[a] = true
		out = append(out, a)
	}
	return out, nil
}

// BackendAddr is where the LB and the readiness check reach the local
// backend on port: its listen address, or loopback when it listens
// everywhere.
func (s Settings) BackendAddr(port int) string {
	host := s.Host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// lbAddr is where this machine reaches the LB's public port: its listen
// address, or loopback when it listens everywhere.
func (s Settings) lbAddr() string {
	host := s.Listen
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(s.Port))
}

// DBPath is the store every backend opens.
func (s Settings) DBPath() string {
	if s.DB != "" {
		return s.DB
	}
	return filepath.Join(s.DataDir, "poster.db")
}

// Run is what a plan needs besides the settings: how the children are
// started and what they are told.
type Run struct {
	Exe       string // the posterctl binary every child runs
	LogFormat string // json or console: a child's stdout is always a pipe
	LogLevel  string
	// Store is DBPath as status shows it. Only the caller knows the store
	// drivers, so it masks a PostgreSQL password here.
	Store string
	// StoreID is the store's id as `up` read it; every backend gets it as
	// --store-id, so one opening another data set is never in rotation.
	StoreID string
}

// The LB's inherited sockets: the supervisor binds both LB ports and hands
// them to every LB generation, in Spec.Listen order from fd 3, so that
// `restart lb` refuses no connection.
const (
	LBListenFD       = 3
	LBHealthListenFD = 4
	// BackendListenFD is a local backend's inherited socket, bound by the
	// supervisor and handed to every generation of that backend.
	BackendListenFD = 3
)

// Files the supervisor makes in the run dir (0600, see supervisor.Config's
// Secrets): the proxy secret the LB sends to every backend and the backends
// check (package fwdauth), and the token of the LB's admin API. Children
// get their paths, never their values.
const (
	ProxySecretName = "proxy-secret"
	AdminTokenName  = "admin-token"
)

// lbUnset are variables of the supervisor's environment the LB must not
// inherit: it never opens the store, and POSTERCTL_DB may carry a password.
func lbUnset() []string { return []string{"POSTERCTL_DB"} }

// Plan turns validated settings into the supervisor's configuration: the
// children in start order, and what scale and `restart lb` need to make
// more of them. The caller adds the Sink.
func Plan(s Settings, r Run) supervisor.Config {
	logEnv := []string{"POSTERCTL_LOG_FORMAT=" + r.LogFormat, "POSTERCTL_LOG_LEVEL=" + r.LogLevel}
	// Through the environment, not argv: every local user can read a
	// process's arguments, and a PostgreSQL URL may carry a password.
	env := append(logEnv[:len(logEnv):len(logEnv)], "POSTERCTL_DB="+s.DBPath())
	secret := filepath.Join(s.RunDir, ProxySecretName)
	newBackend := func(name string, port int) supervisor.Spec {
		addr := s.BackendAddr(port)
		return supervisor.Spec{
			Name: name,
			Path: r.Exe,
			Args: backendArgs(port, s.Host, name, secret, r.StoreID),
			// Bound by the supervisor and kept across restarts, so no other
			// process can take the port while the backend restarts.
			Listen:   []string{net.JoinHostPort(s.Host, strconv.Itoa(port))},
			Env:      env,
			Port:     port,
			Addr:     addr,
			ReadyURL: "http://" + addr + "/healthz",
		}
	}
	var specs []supervisor.Spec
	var addrs []string
	for i := range s.Backends {
		b := newBackend(fmt.Sprintf("backend-%d", i+1), s.BasePort+i)
		specs = append(specs, b)
		// Named, so the LB's reports say backend-1 as status does.
		addrs = append(addrs, b.Name+"="+b.Addr)
	}
	remote, _ := s.RemoteAddrs() // checked by Validate
	out := supervisor.Config{
		RunDir:       s.RunDir,
		Restart:      s.Restart,
		ReadyTimeout: s.ReadyTimeout,
		DataDir:      s.DataDir,
		Store:        r.Store,
		Remote:       remote,
		NewBackend:   newBackend,
		BasePort:     s.BasePort,
		Secrets:      []string{secret},
	}
	if !s.NoLB {
		token := filepath.Join(s.RunDir, AdminTokenName)
		lbArgs := func(backends []string) []string {
			args := []string{"lb", "--port", strconv.Itoa(s.Port), "--health-port", strconv.Itoa(s.HealthPort),
				"--listen-fd", strconv.Itoa(LBListenFD), "--health-listen-fd", strconv.Itoa(LBHealthListenFD),
				"--drain-timeout", max(s.Grace, time.Millisecond).String(),
				"--proxy-secret-file", secret, "--admin-token-file", token,
				"--per-client-max-conns", strconv.Itoa(s.PerClientMaxConns)}
			if s.MaxConns > 0 {
				args = append(args, "--max-conns", strconv.Itoa(s.MaxConns))
			}
			for _, p := range s.TrustedProxies {
				args = append(args, "--trusted-proxy", p)
			}
			for _, a := range backends {
				args = append(args, "--backend", a)
			}
			return args
		}
		out.AdminTokenFile = token
		out.HealthURL = fmt.Sprintf("http://127.0.0.1:%d/health", s.HealthPort)
		out.AdminURL = fmt.Sprintf("http://127.0.0.1:%d", s.HealthPort)
		out.URL = "http://" + s.lbAddr() + "/"
		out.LBArgs = lbArgs
		specs = append(specs, supervisor.Spec{
			Name: "lb", Path: r.Exe, Args: lbArgs(append(addrs, remote...)), Env: logEnv, Unset: lbUnset(),
			Port: s.Port, Extra: []int{s.HealthPort},
			// In fd order: LBListenFD, then LBHealthListenFD.
			Listen:    []string{net.JoinHostPort(s.Listen, strconv.Itoa(s.Port)), net.JoinHostPort("127.0.0.1", strconv.Itoa(s.HealthPort))},
			Handover:  true,
			FrontDoor: true,
			ReadyURL:  out.HealthURL, Stage: 1,
		})
	}
	out.Specs = specs
	return out
}

// ReadyLine is the one line `up` prints once the cluster serves; pid is
// the supervisor's.
func ReadyLine(s Settings, c supervisor.Config, took time.Duration, pid int) string {
	what := fmt.Sprintf("app %s, health %s, %d backends", c.URL, c.HealthURL, s.Backends)
	if n := len(c.Remote); n > 0 {
		what += fmt.Sprintf(" + %d remote", n)
	}
	if s.NoLB {
		what = fmt.Sprintf("%d backends on %s ports %d-%d, no load balancer", s.Backends, s.Host, s.BasePort, s.BasePort+s.Backends-1)
	}
	return fmt.Sprintf("cluster ready in %v: %s, store %s (supervisor pid %d, run dir %s)",
		took.Round(time.Millisecond), what, c.Store, pid, s.RunDir)
}
