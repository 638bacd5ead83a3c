package tcp

import (
	"net"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

// progress is copy.Progress of a connection's socket: the kernel's count
// of bytes received plus bytes acknowledged, which stands still only when
// every queue on the path is stuck. ok is false once the socket is closed.
func progress(c *net.TCPConn) (n uint64, ok bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var perr error
	if err := rc.Control(func(fd uintptr) { n, perr = copystrat.Progress(int(fd)) }); err != nil || perr != nil {
		return 0, false
	}
	return n, true
}
