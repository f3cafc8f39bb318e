package supervisor

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestEnsureSecret(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "admin-token")
	tok, err := ensureSecret(path)
	if err != nil || len(tok) < 32 {
		t.Fatalf("ensureSecret = %q, %v", tok, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, %v", fi, err)
	}
	// Kept across starts, and nothing else is left in the dir.
	if again, err := ensureSecret(path); err != nil || again != tok {
		t.Fatalf("second ensureSecret = %q, %v; want %q", again, err, tok)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("dir holds %v", entries)
	}

	for _, tc := range []struct {
		name, want string
		make       func(p string) error
	}{
		{"Symlink", "not a regular file", func(p string) error { return os.Symlink(path, p) }},
		{"ReadableByOthers", "chmod 600", func(p string) error { return os.WriteFile(p, []byte(strings.Repeat("a", 40)), 0o644) }},
		{"Empty", "shorter than", func(p string) error { return os.WriteFile(p, nil, 0o600) }},
		{"Directory", "not a regular file", func(p string) error { return os.Mkdir(p, 0o700) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "proxy-secret")
			if err := tc.make(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if tok, err := ensureSecret(p); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ensureSecret = %q, %v; want an error saying %q", tok, err, tc.want)
			}
		})
	}
	t.Run("NoDir", func(t *testing.T) {
		if _, err := ensureSecret(filepath.Join(dir, "missing", "x")); err == nil {
			t.Fatal("no error for a missing directory")
		}
	})
}

func TestWithoutVars(t *testing.T) {
	env := []string{"A=1", "POSTERCTL_DB=postgres://u:pw@h/db", "POSTERCTL_DBX=2", "B="}
	got := withoutVars(env, []string{"POSTERCTL_DB", "B"})
	if want := []string{"A=1", "POSTERCTL_DBX=2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("withoutVars = %q, want %q", got, want)
	}
	if got := withoutVars([]string{"A=1"}, nil); !reflect.DeepEqual(got, []string{"A=1"}) {
		t.Fatalf("withoutVars with no names = %q", got)
	}
}
