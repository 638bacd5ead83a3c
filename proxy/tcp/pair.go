package tcp

import (
	"errors"
	"net"
	"sync"
	"time"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

// Directions of a pair.
const (
	up   = 0 // client -> backend
	down = 1 // backend -> client
)

// How a connection ended, for the log line.
const (
	endDone        = copystrat.EndDone
	endTermination = copystrat.EndTermination
	endIdle        = copystrat.EndIdle
	endReset       = copystrat.EndReset
	endShutdown    = copystrat.EndShutdown
)

// pair is one forwarded connection. Its two directions run concurrently,
// each in one uninterrupted Copy: no deadline ever cuts a copier short, so
// splice keeps splicing and a partly written buffer is never abandoned.
//
// Idleness is judged by a watchdog, a timer that runs only while a limit
// applies (an idle timeout, or the termination delay once one side has
// finished). Each tick reads the kernel's byte counters of both sockets
// (see progress): the pair is idle while none of them moves. That covers
// what a copier cannot report: a write blocked on a full socket (idle), and
// bytes the finished direction still has queued towards its peer (moving).
// The idle clock starts at the first tick that saw nothing move, and a tick
// that comes late (the process was descheduled, the VM paused) adds one
// period, not the gap: time in which the proxy itself was not running,
// perhaps holding the very bytes the peers wait for, counts as no more
// than the period it should have taken, and a limit still ends the pair
// when every tick is late (see idleClock).
type pair struct {
	client, backend *net.TCPConn
	idle            time.Duration // 0: no idle timeout
	delay           time.Duration // termination delay; negative: never

	mu       sync.Mutex
	finished [2]bool
	closed   bool
	end      string
	err      error
	watch    *time.Timer
	slice    time.Duration // the watchdog's period for the current limit
	clock    idleClock
}

// ticksPerLimit is how many watchdog ticks fit in one limit: idleness is
// detected between limit and limit + 2 ticks after the last byte moved.
const ticksPerLimit = 8

func newPair(client, backend *net.TCPConn, idle, delay time.Duration) *pair {
	p := &pair{client: client, backend: backend, idle: idle, delay: delay}
	p.mu.Lock()
	p.rearmLocked()
	p.mu.Unlock()
	return p
}

// limitLocked is the idle time allowed now, and whether any applies.
func (p *pair) limitLocked() (time.Duration, bool) {
	return copystrat.IdleLimit(p.idle, p.delay, p.finished[up] || p.finished[down])
}

// reasonLocked names the limit that is running out.
func (p *pair) reasonLocked() string {
	return copystrat.IdleEnd(p.idle, p.delay, p.finished[up] || p.finished[down])
}

// counters sums the progress counters of both sockets.
func (p *pair) counters() (uint64, bool) {
	c, ok1 := progress(p.client)
	b, ok2 := progress(p.backend)
	return c + b, ok1 && ok2
}

// rearmLocked (re)starts the watchdog for the limit that applies now, or
// stops it when none does. The idle clock restarts: something just changed.
func (p *pair) rearmLocked() {
	if p.closed {
		return
	}
	limit, timed := p.limitLocked()
	if !timed {
		if p.watch != nil {
			p.watch.Stop()
		}
		return
	}
	if limit == 0 {
		p.closeLocked(p.reasonLocked(), nil)
		return
	}
	p.slice = max(limit/ticksPerLimit, time.Millisecond)
	n, _ := p.counters()
	p.clock.reset(time.Now(), n)
	if p.watch == nil {
		p.watch = time.AfterFunc(p.slice, p.tick)
	} else {
		p.watch.Reset(p.slice)
	}
}

// tick is the watchdog: it closes the pair once nothing has moved for the
// limit, counted from the first tick that saw nothing move.
func (p *pair) tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	limit, timed := p.limitLocked()
	if !timed {
		return
	}
	n, ok := p.counters()
	if !ok { // a socket is gone: the copiers are ending the pair
		return
	}
	if p.clock.observe(time.Now(), n, p.slice) >= limit {
		p.closeLocked(p.reasonLocked(), nil)
		return
	}
	p.watch.Reset(p.slice)
}

// lateTick is how many periods may pass between two ticks before the
// watchdog takes the gap for time the proxy was not running: half the
// limit, far beyond a timer's usual lateness under load.
const lateTick = ticksPerLimit / 2

// idleClock measures how long a pair's byte counters have stood still, as
// seen by the watchdog's ticks.
type idleClock struct {
	seen  uint64        // the byte counters at the last tick
	still bool          // the last tick saw nothing move
	idle  time.Duration // counted since the first tick that saw nothing move
	last  time.Time     // the last tick
}

func (c *idleClock) reset(now time.Time, n uint64) {
	*c = idleClock{seen: n, last: now}
}

// observe records a tick at now that read the counters n, the watchdog's
// period being slice, and returns how long they have stood still. The
// gap since the last tick counts in full up to lateTick periods; a longer
// gap counts as one period: nothing is known of it, and the counters may
// have stood still only because the proxy was not running. A tick that is
// always late still adds a period each time, so the limit is reached.
func (c *idleClock) observe(now time.Time, n uint64, slice time.Duration) time.Duration {
	gap := now.Sub(c.last)
	c.last = now
	switch {
	case n != c.seen:
		c.seen, c.still, c.idle = n, false, 0
	case !c.still:
		c.still, c.idle = true, 0
	case gap > lateTick*slice:
		c.idle += slice
	default:
		c.idle += gap
	}
	return c.idle
}

// finish records that a direction read EOF: the FIN is passed on with
// CloseWrite, and the termination delay starts, or both sides are closed
// when both are done.
func (p *pair) finish(dir int, dst *net.TCPConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.finished[dir] = true
	_ = dst.CloseWrite()
	if p.finished[up] && p.finished[down] {
		p.closeLocked(endDone, nil)
		return
	}
	p.rearmLocked()
}

// abort ends the pair after an error such as a reset. Each side whose
// outgoing direction has not finished is closed with a reset (SO_LINGER 0),
// so an RST travels on; a side that was already sent its FIN is closed
// gracefully, so bytes forwarded before an RST are never destroyed.
func (p *pair) abort(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if !p.finished[down] {
		_ = p.client.SetLinger(0)
	}
	if !p.finished[up] {
		_ = p.backend.SetLinger(0)
	}
	p.closeLocked(endReset, err)
}

// Close ends the pair at once (graceful shutdown ran out of time).
func (p *pair) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closeLocked(endShutdown, nil)
	}
	return nil
}

// closeLocked closes both sides. A limit (the termination delay, the idle
// timeout, the shutdown grace) that ends a direction with bytes still on
// their way resets that direction's destination: its peer learns that the
// stream was cut, where a FIN would pass it off as complete.
func (p *pair) closeLocked(reason string, err error) {
	p.closed = true
	p.end, p.err = reason, err
	if p.watch != nil {
		p.watch.Stop()
	}
	if reason != endDone && reason != endReset {
		for _, d := range []struct {
			dir      int
			src, dst *net.TCPConn
		}{{up, p.client, p.backend}, {down, p.backend, p.client}} {
			if !p.finished[d.dir] && unsent(d.src, d.dst) {
				_ = d.dst.SetLinger(0)
				if p.err == nil {
					p.err = copystrat.ErrCut
				}
			}
		}
	}
	_ = p.client.Close()
	_ = p.backend.Close()
}

// forward runs one direction until it ends: EOF passes the FIN on, a
// closed socket means the pair was ended (watchdog, other direction or
// shutdown), any other error aborts the pair. It returns the bytes written
// to dst.
func (p *pair) forward(dir int, c copystrat.Copier, dst *net.TCPConn) int64 {
	n, err := c.Copy()
	switch {
	case err == nil:
		p.finish(dir, dst)
	case errors.Is(err, net.ErrClosed):
		_ = p.Close() // already closed, unless the copier saw it first
	default:
		p.abort(err)
	}
	return n
}

// copyClientToBackend and copyBackendToClient are named so stack dumps
// say which way a goroutine moves bytes.
func (p *pair) copyClientToBackend(c copystrat.Copier) int64 {
	return p.forward(up, c, p.backend)
}

func (p *pair) copyBackendToClient(c copystrat.Copier) int64 {
	return p.forward(down, c, p.client)
}

// result is how the pair ended.
func (p *pair) result() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.end, p.err
}
