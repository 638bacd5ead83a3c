package copy

import (
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Splice copies with io.Copy between the raw *net.TCPConn values, which the
// Go runtime turns into splice(2) through a pipe on Linux: the payload never
// enters user space. It must be handed unwrapped connections; any wrapper
// without ReadFrom/WriteTo would silently turn this into a userspace copy.
//
// Go also falls back to a userspace copy, without a word, when it cannot
// make a pipe (the fd limit is reached). Near the limit this strategy
// checks first, and when no pipe can be made it copies through user space
// itself, counts it (SpliceFallbacks) and logs a warning, so the fallback
// is visible in the log and as a mixed strace verdict.
type Splice struct{}

var _ DirectionStrategy = Splice{}

func init() { Register(Splice{}) }

// Name implements Strategy.
func (Splice) Name() string { return "splice" }

// DataPath is splice: (*net.TCPConn).ReadFrom moves the bytes through a
// pipe when both ends are raw TCP conns.
func (Splice) DataPath() string { return DataPathSplice }

// NewCopier implements DirectionStrategy.
func (Splice) NewCopier(dst, src *net.TCPConn, opts Options) Copier {
	return spliceCopier{dst: dst, src: src, logger: opts.Logger}
}

type spliceCopier struct {
	dst, src *net.TCPConn
	logger   *slog.Logger
}

// Copy calls (*net.TCPConn).ReadFrom directly, the method io.Copy would pick,
// so the splice path is explicit rather than a consequence of type switches.
func (c spliceCopier) Copy() (int64, error) {
	if err := pipeShortage(c.src, c.dst); err != nil {
		return fallBack("splice", c.logger, err, c.dst, c.src)
	}
	var r io.Reader = c.src
	return c.dst.ReadFrom(r)
}

var spliceFallbacks atomic.Int64

// SpliceFallbacks is how many directions of the splicing strategies
// (splice, lazysplice) copied through user space because no pipe could be
// made, since the start.
func SpliceFallbacks() int64 { return spliceFallbacks.Load() }

// fallBack copies a direction of a splicing strategy through user space
// because no pipe could be made (cause), after counting it and saying so
// in a warning, so that the fallback is never silent.
func fallBack(strategy string, logger *slog.Logger, cause error, dst, src *net.TCPConn) (int64, error) {
	noteFallback(strategy, logger, cause, src.RemoteAddr(), dst.RemoteAddr())
	return readWriteLoop(dst, src, make([]byte, DefaultBufferSize))
}

// noteFallback counts a direction that copies through user space because
// no pipe could be made, and says so in a warning.
func noteFallback(strategy string, logger *slog.Logger, cause error, src, dst net.Addr) {
	n := spliceFallbacks.Add(1)
	if logger == nil {
		logger = slog.Default()
	}
	logger.Warn(strategy+": no pipe can be made; this direction copies through user space",
		"err", cause, "splice_fallbacks_total", n, "src", src.String(), "dst", dst.String())
}

// pressureMargin: a connection whose socket fds are this close to the fd
// limit checks that a pipe can still be made. File descriptors are
// allocated lowest first, so a socket numbered near the limit means the
// table was nearly full when it was made; far from it, the pipe check
// (three syscalls) is skipped.
const pressureMargin = 32

// pipeShortage returns the error of making a pipe when the process is near
// its fd limit and none can be made now, else nil.
func pipeShortage(conns ...*net.TCPConn) error {
	limit := fdLimit()
	high := -1
	for _, c := range conns {
		rc, err := c.SyscallConn()
		if err != nil {
			return nil // closed: Copy will say so
		}
		_ = rc.Control(func(fd uintptr) { high = max(high, int(fd)) })
	}
	if limit <= 0 || high+pressureMargin < limit {
		return nil
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return err
	}
	_ = unix.Close(p[0])
	_ = unix.Close(p[1])
	return nil
}

var (
	limitCache   atomic.Int64 // the soft RLIMIT_NOFILE
	limitChecked atomic.Int64 // unix nanos of the last getrlimit
)

// fdLimit is the soft fd limit, read at most once a second.
func fdLimit() int {
	now := time.Now().UnixNano()
	if now-limitChecked.Load() > int64(time.Second) {
		var rl unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
			limitCache.Store(int64(min(rl.Cur, 1<<31)))
		}
		limitChecked.Store(now)
	}
	return int(limitCache.Load())
}
