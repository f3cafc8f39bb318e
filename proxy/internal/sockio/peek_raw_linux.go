//go:build linux && (amd64 || arm64)

package sockio

import (
	"syscall"
	"unsafe"
)

// recvPeek is recv(2) with MSG_PEEK|MSG_DONTWAIT as a raw call: it cannot
// block, so it needs none of the scheduler's system-call bookkeeping (see
// Conn).
func recvPeek(fd uintptr, buf []byte) (int, syscall.Errno) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(unsafe.SliceData(buf))), uintptr(len(buf)),
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return int(n), errno
}
