package copy

import (
	"net"
	"os"
	"sync"
	"syscall"
)

// Pooled copies through buffers taken from a shared pool only while bytes
// are ready: it waits for readability through syscall.RawConn holding no
// buffer, so an idle connection costs no buffer memory at all.
type Pooled struct{}

var _ DirectionStrategy = Pooled{}

func init() { Register(Pooled{}) }

// Name implements Strategy.
func (Pooled) Name() string { return "pooled" }

// DataPath is userspace: every byte is read into a pooled buffer.
func (Pooled) DataPath() string { return DataPathUserspace }

// NewCopier implements DirectionStrategy.
func (Pooled) NewCopier(dst, src *net.TCPConn, opts Options) Copier {
	return &pooledCopier{dst: dst, src: src, pool: poolFor(opts.bufferSize())}
}

var (
	poolsMu sync.Mutex
	pools   = map[int]*sync.Pool{}
)

// poolFor returns the shared pool of buffers of one size.
func poolFor(size int) *sync.Pool {
	poolsMu.Lock()
	defer poolsMu.Unlock()
	p, ok := pools[size]
	if !ok {
		p = &sync.Pool{New: func() any { b := make([]byte, size); return &b }}
		pools[size] = p
	}
	return p
}

type pooledCopier struct {
	dst, src *net.TCPConn
	pool     *sync.Pool
}

func (c *pooledCopier) Copy() (written int64, err error) {
	rc, err := c.src.SyscallConn()
	if err != nil {
		return 0, err
	}
	for {
		var (
			buf  *[]byte
			n    int
			rerr error
		)
		// The callback takes a buffer, tries one non-blocking read, and gives
		// the buffer back if nothing was ready, before the runtime parks the
		// goroutine in the poller. Deadlines apply as for conn.Read.
		err := rc.Read(func(fd uintptr) bool {
			buf = c.pool.Get().(*[]byte)
			n, rerr = syscall.Read(int(fd), *buf)
			if rerr == syscall.EAGAIN || rerr == syscall.EINTR {
				c.pool.Put(buf)
				buf = nil
				return false
			}
			return true
		})
		if err != nil { // deadline or closed conn while waiting
			return written, err
		}
		if rerr != nil {
			c.pool.Put(buf)
			return written, &net.OpError{Op: "read", Net: "tcp", Source: c.src.LocalAddr(), Addr: c.src.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
		}
		if n <= 0 {
			c.pool.Put(buf)
			return written, nil // EOF
		}
		w, werr := c.dst.Write((*buf)[:n])
		c.pool.Put(buf)
		written += int64(w)
		if werr != nil {
			return written, werr
		}
	}
}
