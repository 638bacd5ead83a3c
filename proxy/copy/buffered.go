package copy

import (
	"net"
)

// Buffered copies through one fixed userspace buffer per direction, held for
// the life of the connection, with a plain read/write loop: the design of
// nginx stream (proxy_buffer_size). The loop is written by hand because
// io.CopyBuffer between two TCP conns ignores the buffer and splices.
type Buffered struct{}

var _ DirectionStrategy = Buffered{}

func init() { Register(Buffered{}) }

// Name implements Strategy.
func (Buffered) Name() string { return "buffered" }

// DataPath is userspace: every byte is read into the buffer.
func (Buffered) DataPath() string { return DataPathUserspace }

// NewCopier implements DirectionStrategy. It allocates the direction's buffer now.
func (Buffered) NewCopier(dst, src *net.TCPConn, opts Options) Copier {
	return &bufferedCopier{dst: dst, src: src, buf: make([]byte, opts.bufferSize())}
}

type bufferedCopier struct {
	dst, src *net.TCPConn
	buf      []byte
}

func (c *bufferedCopier) Copy() (int64, error) {
	return readWriteLoop(c.dst, c.src, c.buf)
}
