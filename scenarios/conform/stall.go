package conform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/l4bench/l4bench/internal/blackhole"
	"github.com/l4bench/l4bench/proxy"
)

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

// stalledReader: the client sends a request (and a FIN when fin is set),
// then never reads, while the backend floods. The direction towards the
// client ends blocked on a full socket: no byte moves, so the design must
// end both sides within its timeout after the data stopped moving.
func stalledReader(fin bool) func(ctx context.Context, h *Harness) (string, string) {
	return func(ctx context.Context, h *Harness) (string, string) {
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
func largeEchoRepeated(ctx context.Context, h *Harness) (string, string) {
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
func shutdownDialInFlight(ctx context.Context, h *Harness) (string, string) {
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
