package fwdauth_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posterctl/posterctl/fwdauth"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		got, secret string
		want        bool
	}{
		{"s3cret-s3cret-s3cret", "s3cret-s3cret-s3cret", true},
		{"s3cret-s3cret-s3creT", "s3cret-s3cret-s3cret", false},
		{"s3cret", "s3cret-s3cret-s3cret", false},
		{"", "s3cret-s3cret-s3cret", false},
		{"", "", false},
		{"anything", "", false},
	} {
		if got := fwdauth.Match(tc.got, tc.secret); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.got, tc.secret, got, tc.want)
		}
	}
}

func TestNew(t *testing.T) {
	a, b := fwdauth.New(), fwdauth.New()
	if len(a) != 64 || a == b {
		t.Fatalf("New gave %q and %q", a, b)
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secret := fwdauth.New()
	if got, err := fwdauth.ReadFile(write("ok", secret+"\n", 0o600)); err != nil || got != secret {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}
	for _, tc := range []struct {
		name, text string
		mode       os.FileMode
		want       string
	}{
		{"world", secret, 0o644, "chmod 600"},
		{"group", secret, 0o640, "chmod 600"},
		{"short", "short", 0o600, "shorter than"},
		{"empty", "\n", 0o600, "shorter than"},
		{"space", "abcdefgh ijklmnopq", 0o600, "printable ASCII"},
	} {
		_, err := fwdauth.ReadFile(write(tc.name, tc.text, tc.mode))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := fwdauth.ReadFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: no error")
	}
}
