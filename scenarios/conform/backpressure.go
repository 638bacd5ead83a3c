// Group D of the catalogue: backpressure.

package conform

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/l4bench/l4bench/bench/measure"
	"github.com/l4bench/l4bench/internal/payload"
)

// counter counts bytes written through it.
type counter struct {
	w io.Writer
	n atomic.Int64
}

// stalled waits until n stops growing for 300 ms (true) or reaches limit.
func stalled(n *atomic.Int64, limit int64, within time.Duration) (int64, bool) {
	deadline := time.Now().Add(within)
	last := int64(-1)
	for time.Now().Before(deadline) {
		v := n.Load()
		if v >= limit {
			return v, false
		}
		if v == last {
			return v, true
		}
		last = v
		time.Sleep(300 * time.Millisecond)
	}
	return n.Load(), false
}

func rssKiB(h *Harness) int64 {
	if h.inst == nil {
		return 0
	}
	s, _ := measure.ReadProcs(h.inst.PIDs())
	return s.RSSKiB
}

// backpressureSlowBackend: the backend does not read for a while; the
// client's writes must stall at a bounded amount, the design's memory
// stay bounded, 8 other conns keep working, and everything arrive once
// the backend reads.
func backpressureSlowBackend(ctx context.Context, h *Harness) (Status, string) {
	release := make(chan struct{})
	type drained struct {
		n   int64
		sum [32]byte
		err error
	}
	got := make(chan drained, 1)
	addr, err := h.Start(func(b *net.TCPConn) {
		first := make([]byte, 1)
		if _, err := io.ReadFull(b, first); err != nil {
			return
		}
		if first[0] == 'E' {
			_, _ = io.Copy(b, b)
			return
		}
		<-release
		_ = b.SetDeadline(time.Now().Add(30 * time.Second))
		n, sum, err := payload.Drain(b)
		got <- drained{n, sum, err}
	})
	c, rss0, st, obs := dialBackpressure(ctx, h, addr, err)
	if c == nil {
		return st, obs
	}
	defer c.Close()
	if _, err := c.Write([]byte("S")); err != nil {
		return Fail, "write: " + err.Error()
	}
	cw := &counter{w: c}
	sent := make(chan [32]byte, 1)
	go func() {
		sum, _ := payload.Write(cw, 7, bpTotal)
		_ = c.CloseWrite()
		sent <- sum
	}()
	start := time.Now()
	queued, ok := stalled(&cw.n, bpTotal, 10*time.Second)
	growth := (rssKiB(h) - rss0) << 10
	others := otherConnsWork(ctx, addr)
	time.Sleep(max(0, bpStall-time.Since(start)))
	close(release)
	var d drained
	select {
	case d = <-got:
	case <-time.After(30 * time.Second):
		return Fail, "backend did not get the rest within 30 s of reading again"
	}
	want := <-sent
	switch {
	case stallProblem("client", ok, queued, growth) != "":
		return Fail, stallProblem("client", ok, queued, growth)
	case others != "":
		return Fail, others
	case d.n != bpTotal || d.sum != want:
		return Fail, fmt.Sprintf("backend got %d of %d bytes, checksum match %v (%v)", d.n, bpTotal, d.sum == want, d.err)
	}
	return Pass, stallSummary(queued, growth)
}

// dialBackpressure connects to a design started with err (nil c: the
// status to return) and reads its RSS before the transfer.
func dialBackpressure(ctx context.Context, h *Harness, addr string, err error) (*net.TCPConn, int64, Status, string) {
	if err != nil {
		st, obs := startStatus(err)
		return nil, 0, st, obs
	}
	rss0 := rssKiB(h)
	c, err := dial(ctx, addr)
	if err != nil {
		return nil, 0, Fail, "connect: " + err.Error()
	}
	_ = c.SetDeadline(time.Now().Add(40 * time.Second))
	return c, rss0, "", ""
}

// stallProblem says what is wrong with how a writer stalled, or "".
func stallProblem(writer string, ok bool, queued, growth int64) string {
	switch {
	case !ok:
		return fmt.Sprintf("the %s's writes never stalled (%d MiB accepted while nobody read)", writer, queued>>20)
	case queued > bpMaxQueue:
		return fmt.Sprintf("%d MiB accepted before the %s's writes stalled (bound %d MiB)", queued>>20, writer, bpMaxQueue>>20)
	case growth > bpMaxRSS:
		return fmt.Sprintf("design's RSS grew by %d MiB while stalled (bound %d MiB)", growth>>20, bpMaxRSS>>20)
	}
	return ""
}

func stallSummary(queued, growth int64) string {
	return fmt.Sprintf("writes stalled after %.1f MiB; RSS grew %.1f MiB", float64(queued)/(1<<20), float64(growth)/(1<<20))
}

// otherConnsWork echoes 1 MiB on 8 more conns at once; "" when all did
// within 10 s.
func otherConnsWork(ctx context.Context, addr string) string {
	bad := onConns(ctx, addr, 8, func(i int, c *net.TCPConn) string {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			_, _ = c.Write([]byte("E"))
			_, _ = payload.Write(c, uint64(100+i), 1<<20)
		}()
		if _, err := io.CopyN(io.Discard, c, 1<<20); err != nil {
			return fmt.Sprintf("another conn stopped while one backend was stalled: %v", errEnd(err))
		}
		return ""
	})
	if len(bad) > 0 {
		return bad[0]
	}
	return ""
}

// backpressureSlowClient: the client reads nothing, then slowly, then
// at full speed; the backend's writes must stall at a bounded amount and
// everything arrive.
func backpressureSlowClient(ctx context.Context, h *Harness) (Status, string) {
	var cw *counter
	ready := make(chan struct{})
	sent := make(chan [32]byte, 1)
	addr, err := h.Start(func(b *net.TCPConn) {
		_ = b.SetDeadline(time.Now().Add(40 * time.Second))
		cw = &counter{w: b}
		close(ready)
		sum, _ := payload.Write(cw, 11, bpTotal)
		_ = b.CloseWrite()
		sent <- sum
	})
	c, rss0, st, obs := dialBackpressure(ctx, h, addr, err)
	if c == nil {
		return st, obs
	}
	defer c.Close()
	select {
	case <-ready:
	case <-time.After(3 * time.Second):
		return Fail, "backend got no connection"
	}
	start := time.Now()
	queued, ok := stalled(&cw.n, bpTotal, 10*time.Second)
	growth := (rssKiB(h) - rss0) << 10
	time.Sleep(max(0, bpStall-time.Since(start)))
	// ~1 MiB/s for 2 s, then full speed.
	hash := sha256.New()
	slow := make([]byte, 64<<10)
	for range 32 {
		if _, err := io.ReadFull(io.TeeReader(c, hash), slow); err != nil {
			return Fail, "slow read: " + errEnd(err)
		}
		time.Sleep(time.Second / 16)
	}
	n, err := io.Copy(hash, c)
	rest, sum := n+int64(len(slow))*32, [32]byte(hash.Sum(nil))
	want := <-sent
	switch {
	case stallProblem("backend", ok, queued, growth) != "":
		return Fail, stallProblem("backend", ok, queued, growth)
	case rest != bpTotal || sum != want:
		return Fail, fmt.Sprintf("client got %d of %d bytes, checksum match %v (%v)", rest, bpTotal, sum == want, err)
	}
	return Pass, stallSummary(queued, growth)
}
