package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/posterctl/posterctl/fwdauth"
)

// Secrets are files in the run dir holding a random token each (the proxy
// secret, the LB's admin token). Children are given the file's path, never
// the value: a value in argv or the environment is readable by other users
// or inherited by anything the child runs.

// ensureSecrets makes every file of Secrets and AdminTokenFile, once the run
// dir is claimed and before any child starts, and keeps the admin token for
// the LB's admin client.
func (s *Supervisor) ensureSecrets() error {
	paths := s.cfg.Secrets
	if s.cfg.AdminTokenFile != "" {
		paths = append(paths[:len(paths):len(paths)], s.cfg.AdminTokenFile)
	}
	for _, p := range paths {
		tok, err := ensureSecret(p)
		if err != nil {
			return err
		}
		if p == s.cfg.AdminTokenFile {
			s.adminToken = tok
		}
	}
	return nil
}

// ensureSecret returns the token in path, making the file first when there
// is none: 0600, written whole under a temporary name and then linked into
// place, which fails when the name exists, so that a crash never leaves a
// half-written secret and a file already there is never replaced. An
// existing file is kept, so that copies given to backends on other machines
// stay valid across restarts of the cluster; delete it while the cluster is
// down to get a new one. It must be a regular file that only its owner can
// read.
func ensureSecret(path string) (string, error) {
	if tok, err := readSecret(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	tok := fwdauth.New()
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.WriteString(tok + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("secret %s: %w", path, err)
	}
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return readSecret(path) // made by another supervisor's start meanwhile
	} else if err != nil {
		return "", fmt.Errorf("secret %s: %w", path, err)
	}
	return tok, nil
}

func readSecret(path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("secret %s is not a regular file (mode %v): remove it", path, fi.Mode())
	}
	tok, err := fwdauth.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: fix or remove it while the cluster is down", err)
	}
	return tok, nil
}
