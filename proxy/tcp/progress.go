package tcp

import (
	"net"

	"golang.org/x/sys/unix"
)

// progress is a kernel counter of the bytes that moved on a connection:
// bytes received from the peer plus bytes the peer acknowledged. It moves
// whenever a byte crosses the socket in either direction, whoever moves it
// (our copier, splice inside the kernel, or the peer draining what we queued
// earlier), and it stands still when every queue on the path is stuck, which
// is the proxy's definition of idle. ok is false once the socket is closed.
func progress(c *net.TCPConn) (n uint64, ok bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var info *unix.TCPInfo
	var serr error
	if err := rc.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.SOL_TCP, unix.TCP_INFO)
	}); err != nil || serr != nil {
		return 0, false
	}
	return info.Bytes_received + info.Bytes_acked, true
}
