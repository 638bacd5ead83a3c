package copy

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/l4bench/l4bench/internal/rawsys"
)

// The loop's side of the native path: every engine watches a listening
// socket in its own epoll set, and the engine that a client wakes accepts
// it and starts its connect in the same turn. No goroutine waits in
// accept, and a connection costs no goroutine switch between its accept
// and its connect.

// loopAccept4 is the loop's accept, replaced in a test to fail.
var loopAccept4 = rawsys.Accept4

// Listen implements Connector. Every engine watches the socket,
// level-triggered and with EPOLLEXCLUSIVE (so that, where the kernel can,
// a client wakes one engine); the engine that accepts a client serves it.
func (l Loop) Listen(ln Listener) (Listening, error) {
	if _, err := pickEngine(); err != nil {
		return nil, err
	}
	// An accepted socket inherits these options from its listener (the
	// kernel clones the listener's socket): set once here, they cost no
	// call per client.
	if err := ln.Conn.Control(func(fd uintptr) { setSocketDefaults(int(fd)) }); err != nil {
		return nil, err
	}
	ls := &loopListening{ln: ln, splice: l.splice, done: make(chan struct{})}
	for _, e := range engines {
		w := &watch{ls: ls, e: e}
		ls.watches = append(ls.watches, w)
		if err := e.listen(w); err != nil {
			ls.stop(nil)
			return nil, err
		}
	}
	// One hook for the listener's connections, not one per connection
	// (a context's AfterFunc and its removal cost a lock, a map entry
	// and allocations each). It stays registered after Close: the
	// connections outlive the accepting.
	if ln.Ctx != nil && ln.Ctx.Done() != nil {
		context.AfterFunc(ln.Ctx, ls.endAll)
	}
	return ls, nil
}

// endAll ends every connection of the listener (its context is done), and
// any accepted after.
func (ls *loopListening) endAll() {
	ls.ended.Store(true)
	for _, w := range ls.watches {
		w.e.endAll(w)
	}
}

// endAll queues every pair w accepted to be closed as shut down.
func (e *engine) endAll(w *watch) {
	e.mu.Lock()
	queued := false
	for p := w.pairs; p != nil; p = p.lnext {
		if !p.closeQ {
			p.closeQ = true
			if p.added {
				e.closing = append(e.closing, p)
				queued = true
			}
		}
	}
	e.mu.Unlock()
	if queued {
		e.wakeUp()
	}
}

// loopListening is one Listener served by every engine.
type loopListening struct {
	ln      Listener
	splice  bool
	watches []*watch

	once  sync.Once
	err   error
	done  chan struct{}
	ended atomic.Bool // Ctx is done

	// accepting is held (read) by an engine from its check of done to
	// the end of its accept4, and (write) by stop around closing done:
	// once Close has returned, no accept is under way and none starts,
	// so a client that arrives later stays in the caller's backlog.
	// Admit runs after it is released: it may need what Close's caller
	// holds.
	accepting sync.RWMutex

	// The back-off after a failed accept, shared by the engines: the
	// first to fail doubles it, the others keep out until it is over.
	mu      sync.Mutex
	failing atomic.Bool // a back-off ran since the last accept
	backoff time.Duration
	retryAt time.Time
}

// Close implements Listening.
func (ls *loopListening) Close() error {
	ls.stop(nil)
	return nil
}

func (ls *loopListening) Done() <-chan struct{} { return ls.done }

func (ls *loopListening) Err() error {
	<-ls.done
	return ls.err
}

// stop takes the socket out of every engine, once. err is why (nil for
// Close).
func (ls *loopListening) stop(err error) {
	ls.once.Do(func() {
		ls.err = err
		for _, w := range ls.watches {
			w.e.unlisten(w)
		}
		ls.accepting.Lock()
		close(ls.done)
		ls.accepting.Unlock()
	})
}

// watch is one engine's watch of a listening socket. Its fields are the
// engine's, under e.mu.
type watch struct {
	ls      *loopListening
	e       *engine
	slot    int // in e.listeners; the epoll event's Pad is -2-slot
	live    bool
	watched bool      // in the epoll set (out of it while backing off)
	retryAt time.Time // the loop's: when to watch again
	pairs   *loopPair // the pairs it accepted that are open
}

// link adds p to w's pairs (under e.mu).
func (w *watch) link(p *loopPair) {
	p.lw, p.lprev, p.lnext = w, nil, w.pairs
	if w.pairs != nil {
		w.pairs.lprev = p
	}
	w.pairs = p
}

// unlink takes p out of w's pairs (under e.mu).
func (w *watch) unlink(p *loopPair) {
	if p.lprev != nil {
		p.lprev.lnext = p.lnext
	} else {
		w.pairs = p.lnext
	}
	if p.lnext != nil {
		p.lnext.lprev = p.lprev
	}
	p.lw, p.lprev, p.lnext = nil, nil, nil
}

// listen adds w to e: a slot, the epoll watch, and the loop goroutine
// running while e serves a listener.
func (e *engine) listen(w *watch) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	w.slot = -1
	for i, o := range e.listeners {
		if o == nil {
			w.slot = i
			break
		}
	}
	if w.slot < 0 {
		w.slot = len(e.listeners)
		e.listeners = append(e.listeners, nil)
	}
	if err := e.watchListener(w, true); err != nil {
		return err
	}
	e.listeners[w.slot] = w
	w.live = true
	e.listening++
	if !e.running {
		e.running = true
		go e.run()
	}
	return nil
}

// unlisten takes w out of e, and wakes the loop so that it can exit.
func (e *engine) unlisten(w *watch) {
	e.mu.Lock()
	if !w.live {
		e.mu.Unlock()
		return
	}
	w.live = false
	e.listeners[w.slot] = nil
	e.listening--
	_ = e.watchListener(w, false)
	e.mu.Unlock()
	e.wakeUp()
}

// watchListener puts w's socket in or out of the epoll set (under e.mu,
// so that a watch put back after a back-off cannot outlive unlisten). A
// socket already closed has left the set by itself.
func (e *engine) watchListener(w *watch, on bool) error {
	if w.watched == on {
		return nil
	}
	var werr error
	err := w.ls.ln.Conn.Control(func(fd uintptr) {
		if on {
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(fd), Pad: int32(-2 - w.slot)}
			werr = rawsys.EpollCtl(e.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		} else {
			werr = rawsys.EpollCtl(e.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
		}
	})
	if err != nil {
		return err // closed: out of the set already
	}
	if werr != nil {
		return os.NewSyscallError("epoll_ctl", werr)
	}
	w.watched = on
	return nil
}

// accept takes one client from w's socket and starts it on this engine
// (the loop goroutine's), as nginx does by default: one accept per
// readiness event. The socket is watched level-triggered, so a backlog
// longer than one reports again in the loop's next epoll_wait; but Go's
// poller watches the loop's set edge-triggered and is not woken again for
// a socket that stayed ready (checked on this kernel), so the loop must
// not park before it has asked: e.backlog makes it go round first. That
// next epoll_wait also takes what the new pair's sockets raised by then,
// where accepting until EAGAIN spent a call on an empty backlog for
// almost every client (tcp-crr with two clients: 1.6 accept4 and 3.0
// epoll_pwait per connection against 1.0 and 2.3 now, scripts/crrcost).
func (e *engine) accept(w *watch) {
	ls := w.ls
	for {
		fd, client, open, aerr := ls.accept4(&e.acc)
		if !open {
			ls.stop(nil) // the socket was closed
			return
		}
		switch aerr {
		case nil:
		case unix.EAGAIN, errStopped:
			return
		case unix.ECONNABORTED, unix.EINTR:
			continue
		case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
			e.backOff(w, os.NewSyscallError("accept4", aerr)) // out of the epoll set until the retry
			return
		default:
			ls.stop(os.NewSyscallError("accept4", aerr))
			return
		}
		e.backlog = true
		if ls.failing.Load() {
			ls.accepted()
		}
		if c, ok := ls.ln.Admit(fd, client); ok {
			e.adopt(w, fd, client, c)
		}
		return
	}
}

// errStopped: the Listening was stopped (closed) since the event was
// taken; no accept was made.
var errStopped = errors.New("listening stopped")

// accept4 takes one client from the socket through the engine's op,
// unless the Listening is stopped (errStopped); open is false when the
// socket was closed.
func (ls *loopListening) accept4(op *acceptOp) (fd int, client netip.AddrPort, open bool, err error) {
	ls.accepting.RLock()
	defer ls.accepting.RUnlock()
	select {
	case <-ls.done:
		return -1, client, true, errStopped
	default:
	}
	op.fd, op.client, op.err = -1, netip.AddrPort{}, nil
	cerr := ls.ln.Conn.Control(op.fn)
	return op.fd, op.client, cerr == nil, op.err
}

// acceptOp is an engine's accept4 call as the function Control runs,
// made once: a closure made per call, and the results it sets, would be
// four allocations a client.
type acceptOp struct {
	fd     int
	client netip.AddrPort
	err    error
	fn     func(lfd uintptr)
}

// prepare makes op's function (newEngine).
func (op *acceptOp) prepare() {
	op.fn = func(lfd uintptr) {
		op.fd, op.client, op.err = loopAccept4(int(lfd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	}
}

// adopt makes an accepted client a pair of this engine, to be connected
// once the batch of events is handled (start).
func (e *engine) adopt(w *watch, fd int, client netip.AddrPort, c Client) {
	p := &loopPair{e: e, done: c.Done, splice: w.ls.splice, connecting: true, next: c.Next}
	p.sides[client0] = side{fd: fd, p: p}
	p.sides[backend1] = side{fd: -1, p: p}
	p.peer[client0] = client
	e.mu.Lock()
	w.link(p)
	// endAll either finds p in the list or, having marked the listener
	// ended before it took e.mu, is seen here.
	if w.ls.ended.Load() {
		p.closeQ = true
	}
	e.mu.Unlock()
	e.add(p)
}

// backOff takes w's socket out of the epoll set for a while after accept
// failed for a reason that passes: watched level-triggered, a socket whose
// backlog cannot be taken would wake the loop without end.
func (e *engine) backOff(w *watch, err error) {
	retryAt, wait := w.ls.failed(e.now)
	e.mu.Lock()
	if !w.live {
		e.mu.Unlock()
		return
	}
	w.retryAt = retryAt
	_ = e.watchListener(w, false)
	e.mu.Unlock()
	e.retries = append(e.retries, w)
	if wait > 0 && w.ls.ln.Backoff != nil {
		w.ls.ln.Backoff(err, wait)
	}
}

// failed is an accept failure at now: it returns when to accept again,
// and the new back-off when this failure started one (zero when another
// engine's is running).
func (ls *loopListening) failed(now time.Time) (time.Time, time.Duration) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if now.Before(ls.retryAt) {
		return ls.retryAt, 0
	}
	ls.backoff = min(max(2*ls.backoff, 5*time.Millisecond), time.Second)
	ls.retryAt = now.Add(ls.backoff)
	ls.failing.Store(true)
	return ls.retryAt, ls.backoff
}

// accepted ends a run of failures: the next back-off starts at 5 ms.
func (ls *loopListening) accepted() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.backoff, ls.retryAt = 0, time.Time{}
	ls.failing.Store(false)
}

// retry puts back the watches whose back-off is over (nextTimer wakes the
// loop for them).
func (e *engine) retry() {
	keep := e.retries[:0]
	for _, w := range e.retries {
		if w.retryAt.After(e.now) {
			keep = append(keep, w)
			continue
		}
		e.mu.Lock()
		if w.live {
			_ = e.watchListener(w, true)
		}
		e.mu.Unlock()
	}
	clear(e.retries[len(keep):])
	e.retries = keep
}
