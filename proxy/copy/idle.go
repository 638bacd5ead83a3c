package copy

import (
	"time"

	"golang.org/x/sys/unix"
)

// The idle rules every strategy's connections follow, whether proxy/tcp's
// watchdog or a PairStrategy's own timers enforce them.

// IdleLimit is how long a connection may now stay idle: the idle timeout
// (idle > 0), and once a direction has finished, the termination delay
// (delay >= 0) when it is shorter. timed is false when neither applies.
func IdleLimit(idle, delay time.Duration, finished bool) (limit time.Duration, timed bool) {
	if idle > 0 {
		limit, timed = idle, true
	}
	if finished && delay >= 0 {
		if !timed || delay < limit {
			limit = delay
		}
		timed = true
	}
	return limit, timed
}

// IdleEnd names the limit IdleLimit applies: EndTermination or EndIdle.
func IdleEnd(idle, delay time.Duration, finished bool) string {
	if finished && delay >= 0 && (idle <= 0 || delay <= idle) {
		return EndTermination
	}
	return EndIdle
}

// Progress is a kernel counter of the bytes that moved on a TCP socket:
// bytes received from the peer plus bytes the peer acknowledged. It moves
// whenever a byte crosses the socket in either direction, whoever moves it
// (a copier, splice inside the kernel, or the peer draining what was
// queued earlier), and stands still when every queue on the path is stuck:
// the definition of idle.
func Progress(fd int) (uint64, error) {
	info, err := unix.GetsockoptTCPInfo(fd, unix.SOL_TCP, unix.TCP_INFO)
	if err != nil {
		return 0, err
	}
	return info.Bytes_received + info.Bytes_acked, nil
}

// Unsent reports whether bytes of one direction are still on their way
// through the proxy: unread on its source socket, or queued on its
// destination socket and not yet acknowledged (which is also where a
// copier blocked in a write, holding more, is seen from outside). A limit
// that ends a pair while Unsent is true cuts the stream: the destination
// must be reset (SO_LINGER 0), because a FIN would pass the truncated
// stream off as the whole of it.
func Unsent(src, dst int) bool {
	in, err := unix.IoctlGetInt(src, unix.SIOCINQ)
	if err != nil {
		return false
	}
	if in > 0 {
		return true
	}
	out, err := unix.IoctlGetInt(dst, unix.SIOCOUTQ)
	return err == nil && out > 0
}
