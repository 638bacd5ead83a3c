package tcp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

// flood writes to c until a write fails, and reports when it failed.
func flood(c *net.TCPConn, failed chan<- time.Time) {
	buf := make([]byte, 64<<10)
	for {
		if _, err := c.Write(buf); err != nil {
			failed <- time.Now()
			return
		}
	}
}

// requestThenStall starts a proxy set up by configure in front of a
// backend that reads a 3-byte request and then runs respond, and a client
// that sends the request (and a FIN, with fin) and then reads nothing.
func requestThenStall(t *testing.T, strategy string, fin bool, configure func(p *Proxy, u *Upstream), respond func(c *net.TCPConn)) (*Proxy, *net.TCPConn) {
	t.Helper()
	b := startBackend(t, func(c *net.TCPConn) {
		req := make([]byte, 3)
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		respond(c)
	})
	u := upstream(t, strategy, b.addr())
	p := &Proxy{}
	configure(p, u)
	p.Service = single(u)
	c := dial(t, startProxy(t, p))
	_, err := c.Write([]byte("GET"))
	require.NoError(t, err)
	if fin {
		require.NoError(t, c.CloseWrite())
	}
	return p, c
}

// TestStalledReaderIsIdle: a client that stops reading leaves the
// direction towards it blocked in a write (or in splice waiting for the
// socket). No byte moves, so the pair is idle: it is ended by the
// termination delay after a FIN, or by the idle timeout without one.
func TestStalledReaderIsIdle(t *testing.T) {
	const limit = 300 * time.Millisecond
	cases := []struct {
		name string
		fin  bool // the client half-closes after its request
		// configure sets the limit that must end the pair.
		configure func(p *Proxy, u *Upstream)
	}{
		{"after FIN, termination delay", true, func(p *Proxy, u *Upstream) { u.TerminationDelay = limit }},
		{"no FIN, idle timeout", false, func(p *Proxy, u *Upstream) { p.IdleTimeout = limit }},
		{"after FIN, idle timeout only", true, func(p *Proxy, u *Upstream) { p.IdleTimeout = limit }},
	}
	for _, strategy := range strategies {
		for _, tc := range cases {
			t.Run(strategy+"/"+tc.name, func(t *testing.T) {
				failed := make(chan time.Time, 1)
				p, _ := requestThenStall(t, strategy, tc.fin, tc.configure, func(c *net.TCPConn) { flood(c, failed) })
				// The client never reads. The backend's writes must fail
				// once the proxy gives up: buffers fill in well under a
				// second on loopback, then limit + ticks + slack.
				select {
				case <-failed:
				case <-time.After(5 * time.Second):
					t.Fatal("backend still writing 5s after the client stopped reading: the stalled direction escaped the limit")
				}
				require.Eventually(t, func() bool { return p.ActiveConns() == 0 }, 2*time.Second, 10*time.Millisecond,
					"the proxy still tracks the connection")
			})
		}
	}
}

// TestDrainingDirectionIsNotIdle: after the client's FIN the proxy may
// still hold megabytes queued towards the backend. While the backend is
// reading them (slowly, answering nothing yet), bytes are moving, so the
// termination delay must not cut the answer that follows.
func TestDrainingDirectionIsNotIdle(t *testing.T) {
	const (
		delay = 100 * time.Millisecond
		size  = 8 << 20
	)
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			b := startBackend(t, func(c *net.TCPConn) {
				// Wait for the proxy's queue to fill, then read it at
				// ~16 MiB/s: reading takes far longer than the delay, and
				// nothing comes back until the end.
				time.Sleep(2 * delay)
				buf := make([]byte, 16<<10)
				var n int
				for {
					k, err := c.Read(buf)
					n += k
					if err != nil {
						break
					}
					time.Sleep(time.Millisecond)
				}
				_, _ = c.Write([]byte("done"))
				_ = c.CloseWrite()
			})
			u := upstream(t, strategy, b.addr())
			u.TerminationDelay = delay
			addr := startProxy(t, &Proxy{Service: single(u)})
			c := dial(t, addr)
			_, err := pattern(c, 1, size)
			require.NoError(t, err)
			require.NoError(t, c.CloseWrite())
			start := time.Now()
			got, err := io.ReadAll(c)
			require.NoError(t, err)
			assert.Equal(t, "done", string(got), "cut after %v: the draining direction was taken for idle", time.Since(start))
		})
	}
}

// TestAbandonedBytesEndInReset: when a limit ends a pair while bytes are
// still on their way through the proxy (the client stopped reading, the
// backend had more to send), the client must learn that the stream was
// cut: a reset, never a FIN, which would pass the truncated stream off as
// the whole of it. A pair with nothing left to forward still ends with a
// FIN (TestTerminationDelayCountsIdleTime, TestIdleTimeout). The log says
// the connection ended with an error: bytes were dropped.
func TestAbandonedBytesEndInReset(t *testing.T) {
	const limit = 200 * time.Millisecond
	shutdown := func(p *Proxy) {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		assert.ErrorIs(t, p.Shutdown(ctx), context.DeadlineExceeded, "the grace ran out")
	}
	cases := []struct {
		name      string
		fin       bool
		configure func(p *Proxy, u *Upstream)
		end       func(p *Proxy) // what ends the pair, if not a limit
		logged    string         // the end in its log line
	}{
		{"after FIN, termination delay", true, func(p *Proxy, u *Upstream) { u.TerminationDelay = limit }, nil, copystrat.EndTermination},
		{"no FIN, idle timeout", false, func(p *Proxy, u *Upstream) { p.IdleTimeout = limit }, nil, copystrat.EndIdle},
		{"shutdown grace ran out", false, func(p *Proxy, u *Upstream) {}, shutdown, copystrat.EndShutdown},
	}
	for _, strategy := range strategies {
		for _, tc := range cases {
			t.Run(strategy+"/"+tc.name, func(t *testing.T) {
				var logs syncBuffer
				configure := func(p *Proxy, u *Upstream) {
					tc.configure(p, u)
					p.Logger = slog.New(slog.NewTextHandler(&logs, nil))
				}
				p, c := requestThenStall(t, strategy, tc.fin, configure, func(c *net.TCPConn) {
					_, _ = c.Write(make([]byte, 32<<20)) // more than every buffer on the way holds
					_ = readEnd(c, 5*time.Second)        // and never a FIN
				})
				time.Sleep(limit) // the buffers fill
				if tc.end != nil {
					tc.end(p)
				}
				time.Sleep(3 * limit) // a client that stalls past the limit
				require.Eventually(t, func() bool { return p.ActiveConns() == 0 }, 2*time.Second, 10*time.Millisecond,
					"the limit did not end the stalled pair")
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := io.Copy(io.Discard, c)
				assert.ErrorIs(t, err, syscall.ECONNRESET, "read %d bytes of 32 MiB, then %v", n, err)
				require.Eventually(t, func() bool { return strings.Contains(logs.String(), "connection ended with error") }, 2*time.Second, 10*time.Millisecond, logs.String())
				assert.Contains(t, logs.String(), "end="+tc.logged)
				assert.Contains(t, logs.String(), copystrat.ErrCut.Error())
			})
		}
	}
}
