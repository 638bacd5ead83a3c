package copy

import (
	"errors"
	"log/slog"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// LazySplice splices like Splice, but holds a pipe only while bytes are in
// flight, as haproxy does: it waits for the source to be readable holding
// nothing, takes a pipe from a shared pool, splices what is ready into it,
// drains it into the destination, and gives it back. An idle connection
// costs its two sockets and no pipe, where Splice (Go's ReadFrom) keeps a
// 1 MiB pipe per direction for the connection's whole life.
type LazySplice struct{}

var _ DirectionStrategy = LazySplice{}

func init() { Register(LazySplice{}) }

// Name implements Strategy.
func (LazySplice) Name() string { return "lazysplice" }

// DataPath implements Strategy.
func (LazySplice) DataPath() string { return DataPathSplice }

// NewCopier implements DirectionStrategy.
func (LazySplice) NewCopier(dst, src *net.TCPConn, opts Options) Copier {
	return &lazySpliceCopier{dst: dst, src: src, logger: opts.Logger}
}

type lazySpliceCopier struct {
	dst, src *net.TCPConn
	logger   *slog.Logger
}

// pipeSize is each pooled pipe's capacity: what one splice can move. Go's
// own splice sets 1 MiB; a pipe's pages are taken only when bytes fill
// them, so the size costs the few pooled pipes their page array only.
const pipeSize = 1 << 20

// pipe is a kernel pipe used as splice's buffer.
type pipe struct{ r, w int }

// freePipes holds the empty pipes not in use. It is bounded: a pipe given
// back when it is full is closed, so a burst of connections cannot leave
// fds behind, and an idle proxy holds at most cap(freePipes) pipes.
var freePipes = make(chan *pipe, 64)

// PooledPipes is how many empty pipes lazysplice keeps for later
// connections (at most 64): fds the process holds by design, not leaks.
func PooledPipes() int { return len(freePipes) }

func getPipe() (*pipe, error) {
	select {
	case p := <-freePipes:
		return p, nil
	default:
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, err
	}
	// A smaller pipe still works; only the batch size drops.
	_, _ = unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, pipeSize)
	return &pipe{r: fds[0], w: fds[1]}, nil
}

// putPipe gives back an empty pipe.
func putPipe(p *pipe) {
	select {
	case freePipes <- p:
	default:
		p.close()
	}
}

func (p *pipe) close() {
	_ = unix.Close(p.r)
	_ = unix.Close(p.w)
}

// Copy implements Copier.
func (c *lazySpliceCopier) Copy() (written int64, err error) {
	src, err := c.src.SyscallConn()
	if err != nil {
		return 0, err
	}
	dst, err := c.dst.SyscallConn()
	if err != nil {
		return 0, err
	}
	for {
		var (
			p    *pipe
			n    int64
			rerr error
		)
		// Wait for readability holding no pipe; take one only to splice
		// what is ready.
		err := src.Read(func(fd uintptr) bool {
			if p, rerr = getPipe(); rerr != nil {
				return true
			}
			n, rerr = unix.Splice(int(fd), nil, p.w, nil, pipeSize, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			if rerr == unix.EAGAIN || rerr == unix.EINTR {
				putPipe(p) // still empty
				p = nil
				return false
			}
			return true
		})
		if p == nil && rerr != nil && err == nil {
			// No pipe could be made (fd limit): this direction goes on
			// through user space, counted and said as splice does.
			w, err := fallBack("lazysplice", c.logger, rerr, c.dst, c.src)
			return written + w, err
		}
		if err != nil { // deadline or closed conn while waiting
			if p != nil {
				putPipe(p)
			}
			return written, err
		}
		if rerr != nil {
			putPipe(p)
			return written, &net.OpError{Op: "read", Net: "tcp", Source: c.src.LocalAddr(), Addr: c.src.RemoteAddr(), Err: os.NewSyscallError("splice", rerr)}
		}
		if n == 0 {
			putPipe(p)
			return written, nil // EOF
		}
		// Drain the pipe into the destination; a pipe that cannot be
		// drained holds bytes and is closed, not given back.
		for left := n; left > 0; {
			var m int64
			var werr error
			err := dst.Write(func(fd uintptr) bool {
				m, werr = unix.Splice(p.r, nil, int(fd), nil, int(left), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				return !(werr == unix.EAGAIN || werr == unix.EINTR)
			})
			if err == nil && werr == nil && m == 0 {
				werr = errors.New("splice wrote nothing")
			}
			if err != nil || werr != nil {
				p.close()
				if err == nil {
					err = &net.OpError{Op: "write", Net: "tcp", Source: c.dst.LocalAddr(), Addr: c.dst.RemoteAddr(), Err: os.NewSyscallError("splice", werr)}
				}
				return written, err
			}
			written += m
			left -= m
		}
		putPipe(p)
	}
}
