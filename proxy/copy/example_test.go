package copy_test

import (
	"fmt"
	"io"
	"net"
	"slices"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

// upper is a strategy of its own, in one file: it copies through user
// space and upper-cases ASCII letters on the way.
type upper struct{}

func (upper) Name() string { return "example-upper" }

func (upper) DataPath() string { return copystrat.DataPathUserspace }

func (upper) NewCopier(dst, src *net.TCPConn, _ copystrat.Options) copystrat.Copier {
	return upperCopier{dst: dst, src: src}
}

type upperCopier struct{ dst, src *net.TCPConn }

func (c upperCopier) Copy() (int64, error) {
	buf := make([]byte, 16<<10)
	var written int64
	for {
		n, err := c.src.Read(buf)
		for i, b := range buf[:n] {
			if 'a' <= b && b <= 'z' {
				buf[i] = b - 'a' + 'A'
			}
		}
		if n > 0 {
			m, werr := c.dst.Write(buf[:n])
			written += int64(m)
			if werr != nil {
				return written, werr
			}
		}
		if err == io.EOF {
			return written, nil
		}
		if err != nil {
			return written, err
		}
	}
}

// Registering a strategy makes it a --strategy value of l4proxy and an
// l4proxy-<name> target of l4bench. A real strategy calls Register from
// its file's init function.
func ExampleRegister() {
	copystrat.Register(upper{})
	s, err := copystrat.Lookup("example-upper")
	fmt.Println(s.Name(), err, slices.Contains(copystrat.Names(), "example-upper"))
	// Output: example-upper <nil> true
}
