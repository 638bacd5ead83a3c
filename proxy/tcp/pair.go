package tcp

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
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
	endDone        = "done"              // both sides finished with FIN
	endTermination = "termination-delay" // one side finished, the other went idle
	endIdle        = "idle-timeout"
	endReset       = "error"
	endShutdown    = "shutdown"
)

// pair is one forwarded connection. Its two directions run concurrently;
// everything that changes deadlines or closes sockets holds mu, so a
// direction can never miss the wake-up that another one sends.
type pair struct {
	client, backend *net.TCPConn
	idle            time.Duration // 0: no idle timeout
	delay           time.Duration // termination delay; negative: never

	last atomic.Int64 // unix nanos of the last observed activity

	mu       sync.Mutex
	finished [2]bool
	armed    [2]bool
	closed   bool
	end      string
	err      error
}

func newPair(client, backend *net.TCPConn, idle, delay time.Duration) *pair {
	p := &pair{client: client, backend: backend, idle: idle, delay: delay}
	p.touch()
	return p
}

func (p *pair) touch() { p.last.Store(time.Now().UnixNano()) }

// limitLocked is the idle time allowed now, or 0 when none applies.
func (p *pair) limitLocked() (time.Duration, bool) {
	limit, timed := time.Duration(0), false
	if p.idle > 0 {
		limit, timed = p.idle, true
	}
	if (p.finished[up] || p.finished[down]) && p.delay >= 0 {
		if !timed || p.delay < limit {
			limit = p.delay
		}
		timed = true
	}
	return limit, timed
}

// arm sets the read deadline of a direction's source: none when no timer
// applies, else a slice of a quarter of the limit, so that idleness is
// detected between limit and 1.25*limit even when the copier cannot report
// progress before it returns (splice).
func (p *pair) arm(dir int, src *net.TCPConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	limit, timed := p.limitLocked()
	switch {
	case !timed:
		if p.armed[dir] {
			_ = src.SetReadDeadline(time.Time{})
			p.armed[dir] = false
		}
	case limit == 0:
		_ = src.SetReadDeadline(time.Unix(1, 0))
		p.armed[dir] = true
	default:
		slice := max(limit/4, time.Millisecond)
		_ = src.SetReadDeadline(time.Now().Add(slice))
		p.armed[dir] = true
	}
}

// expired reports whether the pair has been idle for longer than allowed,
// and if so closes it with the reason.
func (p *pair) expired() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return true
	}
	limit, timed := p.limitLocked()
	if !timed {
		return false
	}
	if time.Since(time.Unix(0, p.last.Load())) < limit {
		return false
	}
	reason := endIdle
	if (p.finished[up] || p.finished[down]) && p.delay >= 0 && (p.idle <= 0 || p.delay <= p.idle) {
		reason = endTermination
	}
	p.closeLocked(reason, nil)
	return true
}

// finish records that a direction read EOF: the FIN is passed on with
// CloseWrite, and the other direction is woken to start its termination
// delay, or both are closed when both are done.
func (p *pair) finish(dir int, dst *net.TCPConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.finished[dir] = true
	_ = dst.CloseWrite()
	p.touch()
	if p.finished[up] && p.finished[down] {
		p.closeLocked(endDone, nil)
		return
	}
	if p.delay >= 0 {
		other := p.client // the source of the other direction
		if dir == up {
			other = p.backend
		}
		_ = other.SetReadDeadline(time.Unix(1, 0))
	}
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

func (p *pair) closeLocked(reason string, err error) {
	p.closed = true
	p.end, p.err = reason, err
	_ = p.client.Close()
	_ = p.backend.Close()
}

// forward runs one direction until it ends, restarting the copier after
// each deadline slice. It returns the bytes written to dst.
func (p *pair) forward(dir int, c copystrat.Copier, src, dst *net.TCPConn) int64 {
	var total int64
	for {
		p.arm(dir, src)
		n, err := c.Copy()
		total += n
		if n > 0 {
			p.touch()
		}
		switch {
		case err == nil:
			p.finish(dir, dst)
			return total
		case errors.Is(err, os.ErrDeadlineExceeded):
			if p.expired() {
				return total
			}
		case errors.Is(err, net.ErrClosed):
			_ = p.Close() // closed by the other direction or by shutdown
			return total
		default:
			p.abort(err)
			return total
		}
	}
}

// copyClientToBackend and copyBackendToClient are named so stack dumps
// say which way a goroutine moves bytes.
func (p *pair) copyClientToBackend(c copystrat.Copier) int64 {
	return p.forward(up, c, p.client, p.backend)
}

func (p *pair) copyBackendToClient(c copystrat.Copier) int64 {
	return p.forward(down, c, p.backend, p.client)
}

// result is how the pair ended.
func (p *pair) result() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.end, p.err
}
