package web_test

import (
	"database/sql"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posterctl/posterctl/app/sqlite"
	"github.com/posterctl/posterctl/app/storetest"
	"github.com/posterctl/posterctl/app/web"
	"github.com/posterctl/posterctl/fwdauth"
)

const testSecret = "test-proxy-secret-0123456789"

// newLimitEnv is a server behind a pretend load balancer: requests say which
// client address they come from with X-Forwarded-For and the proxy secret.
// Its clock and the store's are one settable clock.
func newLimitEnv(t *testing.T, limits web.Limits) (*env, *storetest.Clock) {
	clock := storetest.NewClock()
	e := newEnvWith(t, func(s *web.Server, db *sqlite.DB) {
		s.ProxySecret = testSecret
		s.Limits = limits
		s.Now = clock.Now
		db.Now = clock.Now
	})
	return e, clock
}

// from returns the headers that make a request come from addr.
func from(addr string) []string {
	return []string{fwdauth.Header, testSecret, "X-Forwarded-For", addr}
}

func (e *env) loginFrom(addr, user, password string) result {
	e.t.Helper()
	return e.doJSON(nil, "POST", "/api/login", map[string]string{"username": user, "password": password}, from(addr)...)
}

func (e *env) register(user, password string) {
	e.t.Helper()
	r := e.doJSON(nil, "POST", "/api/register", map[string]string{"username": user, "password": password}, from("192.0.2.200")...)
	if r.status != http.StatusCreated {
		e.t.Fatalf("register %s: %d %s", user, r.status, r.body)
	}
}

// wantLimited checks a 429 JSON answer whose Retry-After lies in (0, max].
func wantLimited(t *testing.T, r result, max time.Duration) {
	t.Helper()
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429: %s", r.status, r.body)
	}
	r.errMsg(t)
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || secs < 1 || time.Duration(secs)*time.Second > max {
		t.Fatalf("Retry-After = %q, want 1 to %v s", r.header.Get("Retry-After"), max.Seconds())
	}
	if r.header.Get("Set-Cookie") != "" {
		t.Fatalf("a refused login set a cookie: %q", r.header.Get("Set-Cookie"))
	}
}

func wantStatus(t *testing.T, r result, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
}

// With the default limits the 11th wrong password for one username from one
// address is refused until the 15 minutes are over, while the right password
// from another address still logs in at once.
func TestRateLimit_LoginFailures(t *testing.T) {
	e, clock := newLimitEnv(t, web.Limits{})
	e.register("victim", "right-password")

	for i := range 10 {
		if r := e.loginFrom("198.51.100.1", "victim", "wrong-password"); r.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: status %d, want 401: %s", i+1, r.status, r.body)
		}
		clock.Add(time.Second)
	}
	r := e.loginFrom("198.51.100.1", "VICTIM", "wrong-password")
	wantLimited(t, r, 15*time.Minute)
	if got := r.header.Get("Retry-After"); got != strconv.Itoa(15*60-10) {
		t.Errorf("Retry-After = %s, want the rest of the window, %d", got, 15*60-10)
	}
	// The right password is refused too from there: the limit is checked
	// before the password, or it would tell a guesser when it is right.
	wantLimited(t, e.loginFrom("198.51.100.1", "victim", "right-password"), 15*time.Minute)

	wantStatus(t, e.loginFrom("203.0.113.7", "victim", "right-password"), http.StatusOK)
	// Another user from the limited address is not affected.
	e.register("bystander", "bystander-password")
	wantStatus(t, e.loginFrom("198.51.100.1", "bystander", "wrong-password"), http.StatusUnauthorized)

	clock.Add(15*time.Minute - 10*time.Second)
	wantStatus(t, e.loginFrom("198.51.100.1", "victim", "right-password"), http.StatusOK)
}

// A successful login starts that username and address over, and only that
// address.
func TestRateLimit_SuccessResets(t *testing.T) {
	e, _ := newLimitEnv(t, web.Limits{LoginFailures: 3})
	e.register("dora", "dora-password")
	for range 2 {
		wantStatus(t, e.loginFrom("198.51.100.4", "dora", "wrong-password"), http.StatusUnauthorized)
		wantStatus(t, e.loginFrom("198.51.100.3", "dora", "wrong-password"), http.StatusUnauthorized)
	}
	wantStatus(t, e.loginFrom("198.51.100.4", "dora", "dora-password"), http.StatusOK)
	for range 3 {
		wantStatus(t, e.loginFrom("198.51.100.4", "dora", "wrong-password"), http.StatusUnauthorized)
	}
	wantLimited(t, e.loginFrom("198.51.100.4", "dora", "wrong-password"), 15*time.Minute)

	wantStatus(t, e.loginFrom("198.51.100.3", "dora", "wrong-password"), http.StatusUnauthorized)
	wantLimited(t, e.loginFrom("198.51.100.3", "dora", "wrong-password"), 15*time.Minute)
}

// An unknown username is limited like a known one, so the limit does not
// tell which names exist; a name no account can have is left to the address
// limit.
func TestRateLimit_UnknownUser(t *testing.T) {
	e, _ := newLimitEnv(t, web.Limits{LoginFailures: 2, AddrAttempts: 6})
	for range 2 {
		wantStatus(t, e.loginFrom("198.51.100.5", "nobody", "wrong-password"), http.StatusUnauthorized)
	}
	wantLimited(t, e.loginFrom("198.51.100.5", "nobody", "wrong-password"), 15*time.Minute)
	for range 3 {
		wantStatus(t, e.loginFrom("198.51.100.5", "no body!", "wrong-password"), http.StatusUnauthorized)
	}
	wantLimited(t, e.loginFrom("198.51.100.5", "no body!", "wrong-password"), time.Minute)
}

// Register and login attempts share one budget per address and minute.
func TestRateLimit_Address(t *testing.T) {
	e, clock := newLimitEnv(t, web.Limits{AddrAttempts: 3})
	creds := func(n string) map[string]string { return map[string]string{"username": n, "password": "password-" + n} }
	for _, name := range []string{"ann", "ben"} {
		wantStatus(t, e.doJSON(nil, "POST", "/api/register", creds(name), from("198.51.100.6")...), http.StatusCreated)
	}
	wantStatus(t, e.doJSON(nil, "POST", "/api/login", creds("ann"), from("198.51.100.6")...), http.StatusOK)
	wantLimited(t, e.doJSON(nil, "POST", "/api/register", creds("cid"), from("198.51.100.6")...), time.Minute)
	wantLimited(t, e.doJSON(nil, "POST", "/api/login", creds("ann"), from("198.51.100.6")...), time.Minute)
	// Malformed attempts count too.
	wantLimited(t, e.do(nil, "POST", "/api/login", "application/json", strings.NewReader("{"), from("198.51.100.6")...), time.Minute)

	wantStatus(t, e.doJSON(nil, "POST", "/api/login", creds("ann"), from("198.51.100.7")...), http.StatusOK)
	// An IPv6 client is counted by its /64.
	for _, a := range []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"} {
		wantStatus(t, e.doJSON(nil, "POST", "/api/login", creds("ann"), from(a)...), http.StatusOK)
	}
	wantLimited(t, e.doJSON(nil, "POST", "/api/login", creds("ann"), from("2001:db8:1:2::4")...), time.Minute)
	wantStatus(t, e.doJSON(nil, "POST", "/api/login", creds("ann"), from("2001:db8:1:3::1")...), http.StatusOK)

	clock.Add(time.Minute)
	wantStatus(t, e.doJSON(nil, "POST", "/api/register", creds("cid"), from("198.51.100.6")...), http.StatusCreated)
}

// Failures from many addresses slow a username down to one attempt per
// interval, but never lock its owner out.
func TestRateLimit_NoLockout(t *testing.T) {
	e, clock := newLimitEnv(t, web.Limits{LoginFailures: 2, UserFailures: 6})
	e.register("erin", "erin-password")
	for _, a := range []string{"198.51.100.10", "198.51.100.11", "198.51.100.12"} {
		for range 2 {
			wantStatus(t, e.loginFrom(a, "erin", "wrong-password"), http.StatusUnauthorized)
		}
		wantLimited(t, e.loginFrom(a, "erin", "wrong-password"), 15*time.Minute)
	}
	// Slowed down: one attempt per second for the username, from anywhere.
	wantStatus(t, e.loginFrom("198.51.100.13", "erin", "wrong-password"), http.StatusUnauthorized)
	wantLimited(t, e.loginFrom("198.51.100.14", "erin", "wrong-password"), time.Second)
	wantLimited(t, e.loginFrom("203.0.113.9", "erin", "erin-password"), time.Second)
	// Once the second is over the owner gets in.
	clock.Add(time.Second)
	wantStatus(t, e.loginFrom("203.0.113.9", "erin", "erin-password"), http.StatusOK)
	// Other usernames are not slowed.
	e.register("fred", "fred-password")
	wantStatus(t, e.loginFrom("198.51.100.14", "fred", "fred-password"), http.StatusOK)
	wantStatus(t, e.loginFrom("198.51.100.14", "fred", "fred-password"), http.StatusOK)
}

// A negative limit is off.
func TestRateLimit_Off(t *testing.T) {
	e, _ := newLimitEnv(t, web.Limits{LoginFailures: -1, AddrAttempts: -1, UserFailures: -1})
	e.register("gus", "gus-password")
	for range 40 {
		wantStatus(t, e.loginFrom("198.51.100.20", "gus", "wrong-password"), http.StatusUnauthorized)
	}
	wantStatus(t, e.loginFrom("198.51.100.20", "gus", "gus-password"), http.StatusOK)
}

// When the counters cannot be written, logins and registrations still work
// and the failure is logged.
func TestRateLimit_StoreFails(t *testing.T) {
	e, _ := newLimitEnv(t, web.Limits{LoginFailures: 1, AddrAttempts: 1})
	e.register("hana", "hana-password")
	conn, err := sql.Open("sqlite", e.db.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Exec(`DROP TABLE rate_counters`); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		wantStatus(t, e.loginFrom("198.51.100.30", "hana", "wrong-password"), http.StatusUnauthorized)
	}
	wantStatus(t, e.loginFrom("198.51.100.30", "hana", "hana-password"), http.StatusOK)
	wantStatus(t, e.doJSON(nil, "POST", "/api/register", map[string]string{"username": "ivan", "password": "ivan-password"}, from("198.51.100.30")...), http.StatusCreated)
	log := e.logBuf.String()
	for _, op := range []string{`"op":"count"`, `"op":"reset"`} {
		if !strings.Contains(log, "rate limit counter failed") || !strings.Contains(log, op) {
			t.Fatalf("no %s counter failure in the log:\n%s", op, log)
		}
	}
}
