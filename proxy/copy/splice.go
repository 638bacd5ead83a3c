package copy

import (
	"io"
	"net"
)

// Splice copies with io.Copy between the raw *net.TCPConn values, which the
// Go runtime turns into splice(2) through a pipe on Linux: the payload never
// enters user space. It must be handed unwrapped connections; any wrapper
// without ReadFrom/WriteTo would silently turn this into a userspace copy.
type Splice struct{}

var _ Strategy = Splice{}

func init() { Register(Splice{}) }

// Name implements Strategy.
func (Splice) Name() string { return "splice" }

// NewCopier implements Strategy.
func (Splice) NewCopier(dst, src *net.TCPConn, _ Options) Copier {
	return spliceCopier{dst: dst, src: src}
}

type spliceCopier struct{ dst, src *net.TCPConn }

// Copy calls (*net.TCPConn).ReadFrom directly, the method io.Copy would pick,
// so the splice path is explicit rather than a consequence of type switches.
func (c spliceCopier) Copy() (int64, error) {
	var r io.Reader = c.src
	return c.dst.ReadFrom(r)
}
