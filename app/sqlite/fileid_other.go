//go:build !unix

package sqlite

import (
	"errors"
	"io/fs"
)

type fileID struct{}

// identity refuses: without device and inode numbers the store cannot tell
// that its file was deleted or replaced, and serving on would risk losing
// acknowledged writes.
func identity(fs.FileInfo) (fileID, error) {
	return fileID{}, errors.New("the SQLite store checks its file's device and inode, which this system does not provide: run posterctl on Linux or another Unix")
}
