package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// secretFile writes content into a file of mode perm and returns its path.
func secretFile(t *testing.T, content string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return p
}

// The secrets come from files (never argv); a file others can read, or a
// placeholder, is refused at start, not silently used.
func TestLBTrustFlags(t *testing.T) {
	secret := secretFile(t, "proxy-secret-0123456789abcdef\n", 0o600)
	token := secretFile(t, "admin-token-0123456789abcdef", 0o600)
	cfg, _, err := parseLB(t, "--backend", "127.0.0.1:3001", "--proxy-secret-file", secret, "--admin-token-file", token,
		"--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "192.0.2.7", "--trusted-proxy", "2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32")}
	if cfg.ProxySecret != "proxy-secret-0123456789abcdef" || cfg.AdminToken != "admin-token-0123456789abcdef" || !slices.Equal(cfg.TrustedProxies, want) {
		t.Fatalf("secret %q token %q trusted %v", cfg.ProxySecret, cfg.AdminToken, cfg.TrustedProxies)
	}

	// By hand without the flags: no secret sent, admin API disabled.
	cfg, _, err = parseLB(t, "--backend", "127.0.0.1:3001")
	if err != nil || cfg.ProxySecret != "" || cfg.AdminToken != "" || len(cfg.TrustedProxies) != 0 {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}

	open := secretFile(t, "proxy-secret-0123456789abcdef", 0o644)
	short := secretFile(t, "x", 0o600)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"SecretReadable", []string{"--proxy-secret-file", open}, "--proxy-secret-file: proxy secret " + open + ": mode 0644"},
		{"TokenShort", []string{"--admin-token-file", short}, "--admin-token-file: proxy secret " + short + ": shorter than"},
		{"TokenMissing", []string{"--admin-token-file", short + ".none"}, "--admin-token-file"},
		{"BadProxy", []string{"--trusted-proxy", "10.0.0.0/33"}, `--trusted-proxy "10.0.0.0/33"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseLB(t, append([]string{"--backend", "127.0.0.1:3001"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestBackendProxySecretFlag(t *testing.T) {
	secret := secretFile(t, "proxy-secret-0123456789abcdef\n", 0o600)
	cfg, err := parseBackend(t, "--proxy-secret-file", secret)
	if err != nil || cfg.proxySecret != "proxy-secret-0123456789abcdef" {
		t.Fatalf("cfg %+v, %v", cfg, err)
	}
	open := secretFile(t, "proxy-secret-0123456789abcdef", 0o640)
	if _, err := parseBackend(t, "--proxy-secret-file", open); err == nil || !strings.Contains(err.Error(), "mode 0640") {
		t.Fatalf("a secret others can read: err %v", err)
	}
}
