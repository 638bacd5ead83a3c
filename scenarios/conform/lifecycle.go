// Group C of the catalogue: the connection lifecycle (refusals, timeouts,
// churn, stalls, shutdown).

package conform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l4bench/l4bench/internal/blackhole"
	"github.com/l4bench/l4bench/proxy"
)

func connectTimeout(ctx context.Context, h *Harness) (Status, string) {
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
func idleTimeout(ctx context.Context, h *Harness) (Status, string) {
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
	type outcome struct {
		variant string
		status  Status
		obs     string
	}
	results := make(chan outcome, 4)
	var wg sync.WaitGroup
	run := func(variant string, f func(c *net.TCPConn) (Status, string)) {
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
	run("a-no-data", func(c *net.TCPConn) (Status, string) {
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
	run("b-traffic", func(c *net.TCPConn) (Status, string) {
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
	run("c-stalled-buffers", func(c *net.TCPConn) (Status, string) {
		_, _ = c.Write(append([]byte("c"), make([]byte, 16<<10)...))
		time.Sleep(T + time.Second)
		end, _ := endOf(c, 200*time.Millisecond)
		if end == "open" {
			return Lenient, fmt.Sprintf("still open %s after 16 KiB were queued each way: stalled buffers count as activity here", T+time.Second)
		}
		return Pass, ""
	})
	run("d-idle-past-connect-timeout", func(c *net.TCPConn) (Status, string) {
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

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func sendBeforeAccept(ctx context.Context, h *Harness) (Status, string) {
	h.AcceptDelay = 500 * time.Millisecond
	got := make(chan []byte, 1)
	c, st, obs := setup(ctx, h, func(b *net.TCPConn) {
		data, _ := io.ReadAll(b)
		got <- data
	})
	if c == nil {
		return st, obs
	}
	defer c.Close()
	want := make([]byte, 16<<10)
	for i := range want {
		want[i] = byte(i * 7)
	}
	_, _ = c.Write(want)
	_ = c.CloseWrite()
	select {
	case data := <-got:
		if !bytes.Equal(data, want) {
			return Fail, fmt.Sprintf("backend got %d of %d bytes (in order: %v)", len(data), len(want), bytes.HasPrefix(want, data))
		}
	case <-time.After(5 * time.Second):
		return Fail, "backend never got the early bytes and EOF"
	}
	return Pass, ""
}

func abortBeforeConnect(ctx context.Context, h *Harness) (Status, string) {
	addr, err := h.Start(func(b *net.TCPConn) { _, _ = io.Copy(io.Discard, b) })
	if err != nil {
		return NA, "design did not start: " + err.Error()
	}
	base := h.FDs()
	for i := range 1000 {
		c, err := dial(ctx, addr)
		if err != nil {
			return Fail, fmt.Sprintf("connect %d: %v", i+1, err)
		}
		if i%2 == 1 {
			_ = c.SetLinger(0) // every other one as a reset
		}
		_ = c.Close()
	}
	c, err := dial(ctx, addr)
	if err != nil {
		return Fail, "design stopped serving: " + err.Error()
	}
	_ = c.Close()
	if base >= 0 {
		if n, ok := fdsBackTo(h, base, 3*time.Second); !ok {
			return Fail, fmt.Sprintf("%d sockets open 3 s after 1000 aborted connections, %d before", n, base)
		}
	}
	return Pass, ""
}

func manyConcurrent(ctx context.Context, h *Harness) (Status, string) {
	addr, err := h.Start(func(b *net.TCPConn) {
		_, _ = io.Copy(b, b)
		_ = b.CloseWrite()
	})
	if err != nil {
		return NA, "design did not start: " + err.Error()
	}
	const conns = 1000
	bad := onConns(ctx, addr, conns, func(i int, c *net.TCPConn) string {
		msg := make([]byte, 4+64<<10)
		copy(msg, fmt.Sprintf("%04d", i))
		for k := 4; k < len(msg); k++ {
			msg[k] = byte(rand.Uint32())
		}
		go func() { _, _ = c.Write(msg); _ = c.CloseWrite() }()
		got, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(got, msg) {
			return fmt.Sprintf("conn %d got %d of %d bytes back (own: %v, %v)", i, len(got), len(msg), bytes.HasPrefix(got, msg[:4]), err)
		}
		return ""
	})
	if len(bad) > 0 {
		return Fail, fmt.Sprintf("%d of %d connections wrong, first: %s", len(bad), conns, bad[0])
	}
	return Pass, ""
}

func churnNoLeak(ctx context.Context, h *Harness) (Status, string) {
	addr, err := h.Start(func(b *net.TCPConn) { _, _ = io.Copy(b, b) })
	if err != nil {
		return NA, "design did not start: " + err.Error()
	}
	warm := func(n int) error {
		buf := make([]byte, 4)
		for i := range n {
			c, err := dial(ctx, addr)
			if err != nil {
				return fmt.Errorf("connect %d: %w", i+1, err)
			}
			_, _ = c.Write([]byte("ping"))
			_, err = io.ReadFull(c, buf)
			_ = c.Close()
			if err != nil {
				return fmt.Errorf("exchange %d: %w", i+1, err)
			}
		}
		return nil
	}
	if err := warm(100); err != nil { // pools and caches settle first
		return Fail, err.Error()
	}
	time.Sleep(300 * time.Millisecond)
	base := h.FDs()
	if err := warm(10000); err != nil {
		return Fail, err.Error()
	}
	if base >= 0 {
		if n, ok := fdsBackTo(h, base, 3*time.Second); !ok {
			return Fail, fmt.Sprintf("%d sockets open after 10000 sequential connections, %d before", n, base)
		}
	}
	return Pass, ""
}

// StallLimit is the half-close and idle timeout every design gets in the
// stalled-reader cases (haproxy timeout client/server/client-fin, nginx
// proxy_timeout, socat -T and -t, l4proxy idleTimeout and
// terminationDelay), and stallSlack what a design may take beyond it.
const (
	StallLimit = time.Second
	stallSlack = 2 * time.Second
)

// flooder is a backend that reads a 3-byte request and then writes flat
// out until a write fails, noting when a write last completed.
type flooder struct {
	lastOK atomic.Int64 // unix nanos of the last completed write
	done   chan flood
}

type flood struct {
	failedAt time.Time
	sent     int64
	err      error
}

func newFlooder() *flooder { return &flooder{done: make(chan flood, 1)} }

// stalledReader: the client sends a request (and a FIN when fin is set),
// then never reads, while the backend floods. The direction towards the
// client ends blocked on a full socket: no byte moves, so the design must
// end both sides within its timeout after the data stopped moving.
func stalledReader(fin bool) func(ctx context.Context, h *Harness) (Status, string) {
	return func(ctx context.Context, h *Harness) (Status, string) {
		h.IdleTimeout, h.HalfClose = StallLimit, StallLimit
		f := newFlooder()
		c, st, obs := setup(ctx, h, f.handle(ctx))
		if c == nil {
			return st, obs
		}
		defer c.Close()
		if _, err := c.Write([]byte("GET")); err != nil {
			return Fail, "client write: " + err.Error()
		}
		if fin {
			_ = c.CloseWrite()
		}
		// Buffers fill in well under a second on loopback; after that the
		// design has the limit plus slack.
		wait := time.NewTimer(StallLimit + stallSlack + 5*time.Second)
		defer wait.Stop()
		var fl flood
		select {
		case fl = <-f.done:
		case <-wait.C:
			return Fail, fmt.Sprintf("backend still connected %s after the data stopped moving (limit %s): the stalled direction was never ended",
				time.Since(f.stoppedAt()).Round(100*time.Millisecond), StallLimit)
		case <-ctx.Done():
			return cancelled(ctx)
		}
		if fl.failedAt.IsZero() {
			return Fail, "backend: " + fl.err.Error()
		}
		took := fl.failedAt.Sub(f.stoppedAt())
		if took > StallLimit+stallSlack {
			return Fail, fmt.Sprintf("backend cut %s after the data stopped moving (limit %s)", took.Round(100*time.Millisecond), StallLimit)
		}
		// The client's side must be ended too: what was buffered for it
		// may still be read, then EOF or a reset, never a silent wait.
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.Copy(io.Discard, c); isTimeout(err) {
			return Fail, fmt.Sprintf("backend cut after %s, but the client's connection was left open", took.Round(100*time.Millisecond))
		}
		return Pass, fmt.Sprintf("both sides ended %s after the data stopped moving (%d bytes sent by the backend)", took.Round(100*time.Millisecond), fl.sent)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// echoRuns is how many times tcp-large-echo-repeated starts a fresh design.
const echoRuns = 20

// largeEchoRepeated: a fresh design each run; the client writes 64 MiB
// and a FIN while reading the echo; the backend echoes and then sends its
// FIN. The half-close timeout is l4proxy's default (100 ms), where a timer
// that fires while bytes still move loses the end of the echo.
func largeEchoRepeated(ctx context.Context, h *Harness) (Status, string) {
	h.HalfClose = proxy.DefaultTerminationDelay
	addr, err := h.Start(func(b *net.TCPConn) {
		_, _ = io.Copy(b, b)
		_ = b.CloseWrite()
	})
	if err != nil {
		return startStatus(err)
	}
	var failures []string
	for run := 1; run <= echoRuns; run++ {
		if run > 1 {
			if addr, err = h.Restart(fmt.Sprintf("run-%02d", run)); err != nil {
				return Fail, fmt.Sprintf("run %d: design did not restart: %v", run, err)
			}
		}
		if ctx.Err() != nil {
			return cancelled(ctx)
		}
		if obs := echoOnce(ctx, addr, uint64(run)); obs != "" {
			failures = append(failures, fmt.Sprintf("run %d: %s", run, obs))
		}
	}
	if len(failures) > 0 {
		return Fail, fmt.Sprintf("%d of %d runs lost data; %s", len(failures), echoRuns, strings.Join(failures, "; "))
	}
	return Pass, fmt.Sprintf("%d of %d runs intact", echoRuns, echoRuns)
}

// echoOnce sends largeSize bytes and a FIN while reading the echo, and
// says what went wrong ("" when all came back intact).
func echoOnce(ctx context.Context, addr string, seed uint64) string {
	c, err := dial(ctx, addr)
	if err != nil {
		return "connect: " + err.Error()
	}
	defer c.Close()
	type got struct {
		n   int64
		sum [32]byte
		err error
	}
	back := make(chan got, 1)
	go func() {
		n, sum, err := drain(c)
		back <- got{n, sum, err}
	}()
	sent, err := pattern(c, seed, largeSize)
	if err != nil {
		_ = c.Close()
		<-back
		return "client write: " + err.Error()
	}
	_ = c.CloseWrite()
	g := <-back
	switch {
	case g.n != largeSize:
		return fmt.Sprintf("got %d of %d bytes back (%v)", g.n, largeSize, g.err)
	case g.sum != sent:
		return "checksum differs"
	}
	return ""
}

// ShutdownGrace is l4proxy's --shutdown-grace in tcp-shutdown-dial-in-flight.
const ShutdownGrace = time.Second

// shutdownDialInFlight: l4proxy is dialling a backend that never answers
// (full accept queue, connect timeout 30 s) when SIGTERM arrives; it must
// exit within its grace + 1 s and close the waiting client. Peers have no
// setting the harness passes for this (n/a).
func shutdownDialInFlight(ctx context.Context, h *Harness) (Status, string) {
	if !strings.HasPrefix(h.target.Name(), "l4proxy") {
		return NA, "l4proxy only: the case checks l4proxy's --shutdown-grace"
	}
	bh, err := blackhole.Listen()
	if err != nil {
		return Fail, "test setup: " + err.Error()
	}
	defer bh.Close()
	h.ConnectTimeout = 30 * time.Second
	h.Extra = []string{"--shutdown-grace", ShutdownGrace.String()}
	addr, err := h.StartTo(bh.Addr())
	if err != nil {
		return startStatus(err)
	}
	c, err := dial(ctx, addr)
	if err != nil {
		return Fail, "connect: " + err.Error()
	}
	defer c.Close()
	_, _ = c.Write([]byte("hello"))
	if !pause(ctx, 300*time.Millisecond) { // accepted; the dial is under way
		return cancelled(ctx)
	}
	start := time.Now()
	_ = h.inst.Stop() // SIGTERM, then waits for the exit (SIGKILL after 5 s)
	took := time.Since(start)
	if took > ShutdownGrace+time.Second {
		return Fail, fmt.Sprintf("exited %s after SIGTERM with a grace of %s: the dial held it", took.Round(100*time.Millisecond), ShutdownGrace)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := io.Copy(io.Discard, c); isTimeout(err) {
		return Fail, "the waiting client was left open after the process exited"
	}
	return Pass, fmt.Sprintf("exited %s after SIGTERM (grace %s)", took.Round(10*time.Millisecond), ShutdownGrace)
}

func backendRefused(ctx context.Context, h *Harness) (Status, string) {
	// Held, not listening: a closed listener's port could become the
	// design's own local port in a self-connect, which succeeds.
	refuser, err := blackhole.Refusing()
	if err != nil {
		return Fail, "test setup: " + err.Error()
	}
	defer refuser.Close()
	addr, err := h.StartTo(refuser.Addr())
	if err != nil {
		return NA, "design did not start: " + err.Error()
	}
	for i := range 2 { // the second proves the design keeps serving
		c, err := dial(ctx, addr)
		if err != nil {
			return Fail, fmt.Sprintf("connect %d: %v", i+1, err)
		}
		how, took := endOf(c, 2*time.Second)
		_ = c.Close()
		if how == "open" || took > time.Second {
			return Fail, fmt.Sprintf("client left open %s with a refused backend", took.Round(time.Millisecond))
		}
	}
	return Pass, ""
}

func (f *flooder) handle(ctx context.Context) func(b *net.TCPConn) {
	return func(b *net.TCPConn) {
		if _, err := io.ReadFull(b, make([]byte, 3)); err != nil {
			f.done <- flood{err: fmt.Errorf("backend never got the request: %w", err)}
			return
		}
		// Small writes, so that the last completed one is within 4 KiB of
		// when the data stopped moving.
		buf := make([]byte, 4<<10)
		var sent int64
		f.lastOK.Store(time.Now().UnixNano())
		for ctx.Err() == nil {
			n, err := b.Write(buf)
			sent += int64(n)
			if err != nil {
				f.done <- flood{failedAt: time.Now(), sent: sent, err: err}
				return
			}
			f.lastOK.Store(time.Now().UnixNano())
		}
		f.done <- flood{sent: sent, err: ctx.Err()}
	}
}

func (f *flooder) stoppedAt() time.Time { return time.Unix(0, f.lastOK.Load()) }
