package tcp

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNoLossUnderTerminationDelay repeats the transfer that lost data
// with the default 100ms delay: the client writes 64 MiB and half-closes
// while reading the echo, the backend echoes all and then half-closes.
func TestNoLossUnderTerminationDelay(t *testing.T) {
	const size = 64 << 20
	// A loss seen in 1 run of 10 escapes 44 runs with probability
	// 0.9^44 < 1%. -short (the race pass) only checks the mechanism.
	runs := 44
	if testing.Short() {
		runs = 4
	}
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			for i := range runs {
				b := startBackend(t, func(c *net.TCPConn) {
					_, _ = io.Copy(c, c)
					_ = c.CloseWrite()
				})
				u := upstream(t, strategy, b.addr())
				u.TerminationDelay = 100 * time.Millisecond
				addr := startProxy(t, &Proxy{Service: single(u)})
				c := dial(t, addr)
				type res struct {
					n   int64
					sum [32]byte
					err error
				}
				got := make(chan res, 1)
				go func() {
					n, sum, err := drain(c)
					got <- res{n, sum, err}
				}()
				sent, err := pattern(c, uint64(i), size)
				require.NoError(t, err)
				require.NoError(t, c.CloseWrite())
				r := <-got
				require.NoError(t, r.err)
				require.Equal(t, int64(size), r.n, "run %d: echo cut short", i)
				assert.Equal(t, sent, r.sum)
			}
		})
	}
}
