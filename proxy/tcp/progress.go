package tcp

import (
	"net"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

// progress is copy.Progress of a connection's socket: the kernel's count
// of bytes received plus bytes acknowledged, which stands still only when
// every queue on the path is stuck. ok is false once the socket is closed.
func progress(c *net.TCPConn) (n uint64, ok bool) {
	var perr error
	if !withFD(c, func(fd int) { n, perr = copystrat.Progress(fd) }) || perr != nil {
		return 0, false
	}
	return n, true
}

// unsent is copy.Unsent of a direction from src to dst: false when either
// socket is closed already.
func unsent(src, dst *net.TCPConn) (u bool) {
	ok := withFD(src, func(sfd int) {
		withFD(dst, func(dfd int) { u = copystrat.Unsent(sfd, dfd) })
	})
	return ok && u
}

// withFD runs f with c's descriptor; false when c is closed.
func withFD(c *net.TCPConn, f func(fd int)) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	return rc.Control(func(fd uintptr) { f(int(fd)) }) == nil
}
