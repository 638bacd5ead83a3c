package conform

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l4bench/l4bench/bench/measure"
	"github.com/l4bench/l4bench/internal/blackhole"
	"github.com/l4bench/l4bench/internal/payload"
)

// ConnectTimeout and IdleTimeout are what every design is configured
// with in the cases about those timeouts.
const (
	ConnectTimeout = time.Second
	IdleTimeout    = time.Second
)

func connectTimeout(ctx context.Context, h *Harness) (string, string) {
	fb, err := blackhole.Listen()
	if err != nil {
		return Fail, "test setup: " + err.Error()
	}
	defer fb.Close()
	h.ConnectTimeout = ConnectTimeout
	addr, err := h.StartTo(fb.Addr())
	if err != nil {
		return startStatus(err)
	}
	base := h.FDs()
	c, err := dial(ctx, addr)
	if err != nil {
		return Fail, "connect: " + err.Error()
	}
	defer c.Close()
	_, _ = c.Write([]byte("hello"))
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(ConnectTimeout + 4*time.Second))
	n, _ := io.Copy(io.Discard, c)
	took := time.Since(start)
	switch {
	case took > ConnectTimeout+time.Second:
		return Fail, fmt.Sprintf("client closed after %s with a connect timeout of %s", took.Round(time.Millisecond), ConnectTimeout)
	case n > 0:
		return Fail, fmt.Sprintf("client got %d bytes from a backend that never connected", n)
	}
	if n, ok := fdsBackTo(h, base, time.Second); !ok {
		return Fail, fmt.Sprintf("%d sockets open after the client was closed, %d before", n, base)
	}
	return Pass, ""
}

// idleTimeout runs the catalogue's four variants at once on one design:
// (a) no data, (b) traffic every T/3 for 3T, (c) 16 KiB queued each way
// with nobody reading, (d) idle longer than the connect timeout but
// shorter than T. The backend tells them apart by the first byte.
func idleTimeout(ctx context.Context, h *Harness) (string, string) {
	h.IdleTimeout, h.ConnectTimeout = IdleTimeout, IdleTimeout*3/10
	done := make(chan struct{})
	defer close(done)
	backendEnd := make(chan time.Duration, 1) // (a): when the backend saw its conn end
	start := time.Now()
	addr, err := h.Start(func(b *net.TCPConn) {
		first := make([]byte, 1)
		if _, err := io.ReadFull(b, first); err != nil {
			backendEnd <- time.Since(start)
			return
		}
		switch first[0] {
		case 'b', 'd':
			_, _ = io.Copy(b, b)
		case 'c':
			_, _ = b.Write(make([]byte, 16<<10))
			<-done
		}
	})
	if err != nil {
		return startStatus(err)
	}
	T := IdleTimeout
	type outcome struct{ variant, status, obs string }
	results := make(chan outcome, 4)
	var wg sync.WaitGroup
	run := func(variant string, f func(c *net.TCPConn) (string, string)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial(ctx, addr)
			if err != nil {
				results <- outcome{variant, Fail, "connect: " + err.Error()}
				return
			}
			defer c.Close()
			st, obs := f(c)
			results <- outcome{variant, st, obs}
		}()
	}
	start = time.Now()
	run("a-no-data", func(c *net.TCPConn) (string, string) {
		end, took := endOf(c, T+2*time.Second)
		if end == "open" || took < T*3/4 || took > T+time.Second {
			return Fail, fmt.Sprintf("client end %s after %s, idle timeout %s", end, took.Round(time.Millisecond), T)
		}
		select {
		case b := <-backendEnd:
			if b > T+time.Second {
				return Fail, fmt.Sprintf("backend's conn ended after %s", b.Round(time.Millisecond))
			}
		case <-time.After(time.Second):
			return Fail, "backend's conn still open 1 s after the client's was closed"
		}
		return Pass, ""
	})
	run("b-traffic", func(c *net.TCPConn) (string, string) {
		_, _ = c.Write([]byte("b"))
		buf := make([]byte, 4)
		for i := range 9 {
			time.Sleep(T / 3)
			_ = c.SetDeadline(time.Now().Add(time.Second))
			if _, err := c.Write([]byte("ping")); err != nil {
				return Fail, fmt.Sprintf("closed at exchange %d of 9 (every %s): %v", i+1, T/3, err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				return Fail, fmt.Sprintf("closed at exchange %d of 9 (every %s): %v", i+1, T/3, errEnd(err))
			}
		}
		return Pass, ""
	})
	run("c-stalled-buffers", func(c *net.TCPConn) (string, string) {
		_, _ = c.Write(append([]byte("c"), make([]byte, 16<<10)...))
		time.Sleep(T + time.Second)
		end, _ := endOf(c, 200*time.Millisecond)
		if end == "open" {
			return Lenient, fmt.Sprintf("still open %s after 16 KiB were queued each way: stalled buffers count as activity here", T+time.Second)
		}
		return Pass, ""
	})
	run("d-idle-past-connect-timeout", func(c *net.TCPConn) (string, string) {
		time.Sleep(T * 6 / 10)
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("dping")); err != nil {
			return Fail, "write: " + err.Error()
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			return Fail, fmt.Sprintf("after %s idle (connect timeout %s): %q, %v", T*6/10, h.ConnectTimeout, buf, err)
		}
		return Pass, ""
	})
	wg.Wait()
	close(results)
	status, notes := Pass, []string{}
	for o := range results {
		status = worse(status, o.status)
		if o.status != Pass {
			notes = append(notes, o.variant+": "+o.obs)
		}
	}
	return status, strings.Join(notes, "; ")
}

// counter counts bytes written through it.
type counter struct {
	w io.Writer
	n atomic.Int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
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

// Backpressure bounds: what a stalled reader may have accepted from the
// writer (the kernel's socket buffers on both legs plus the design's own
// buffers), and how much the design's RSS may grow meanwhile.
const (
	bpTotal    = 96 << 20
	bpMaxQueue = 64 << 20
	bpMaxRSS   = 32 << 20
	bpStall    = 2 * time.Second // the catalogue's 5 s, shortened to bound the matrix
)

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
func backpressureSlowBackend(ctx context.Context, h *Harness) (string, string) {
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
func dialBackpressure(ctx context.Context, h *Harness, addr string, err error) (*net.TCPConn, int64, string, string) {
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
func backpressureSlowClient(ctx context.Context, h *Harness) (string, string) {
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
