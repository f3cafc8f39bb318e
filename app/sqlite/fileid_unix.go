//go:build unix

package sqlite

import (
	"fmt"
	"io/fs"
	"syscall"
)

// fileID is a file's identity: a path that names another device or inode
// names another file, whatever its name or content.
type fileID struct {
	dev uint64
	ino uint64
}

// identity returns the device and inode behind fi.
func identity(fi fs.FileInfo) (fileID, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, fmt.Errorf("%s: no device and inode in its file info", fi.Name())
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, nil //nolint:unconvert // Dev is 32-bit on some systems
}
