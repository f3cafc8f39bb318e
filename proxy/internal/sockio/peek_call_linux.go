//go:build linux && !(amd64 || arm64)

package sockio

import "syscall"

// recvPeek is recv(2) with MSG_PEEK|MSG_DONTWAIT through syscall.Recvfrom,
// which every Linux architecture has (on 386 it goes through socketcall).
func recvPeek(fd uintptr, buf []byte) (int, syscall.Errno) {
	n, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	if err != nil {
		errno, ok := err.(syscall.Errno)
		if !ok {
			return n, syscall.EINVAL
		}
		return n, errno
	}
	return n, 0
}
