package copy

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/l4bench/l4bench/internal/rawsys"
)

// Loop is the event-loop engine, the way haproxy, nginx and envoy work: no
// goroutine per connection. It takes a connection one of two ways. With
// Listen, it serves a listening socket itself: the loop accepts the
// client and connects to the backend (non-blocking, the connect timeout on
// its wheel, the preamble as the first bytes up).
// With TakeOver, when proxy/tcp had work to do in Go first (a PROXY header
// to read, a host name to resolve), it keeps a descriptor of each socket
// of a dialled pair and closes the Go conns. Either way one loop per
// GOMAXPROCS, over its own epoll set, copies both directions, passes
// half-closes and resets on, and enforces the idle timeout and the
// termination delay with a timer wheel.
// An idle connection costs its two sockets, their epoll entries and one
// small struct: no goroutine stack, no buffer, no pipe.
//
// Two strategies run on it. "loop" copies through a userspace buffer taken
// only while bytes are ready and held only while a write is blocked (the
// nginx and envoy answer). "loopsplice" starts the same way, and once a
// read fills the buffer it splices that direction through a pipe taken
// from lazysplice's pool the same way (haproxy's pipes, splicing bulk
// only): short exchanges never pay for a pipe.
//
// The loop's epoll descriptor is itself registered with Go's poller, so the
// loop goroutine parks like any other goroutine waiting for a socket: it
// holds no thread while idle and never blocks the runtime's scheduler. The
// goroutine exits when its last connection ends and starts again with the
// next one; the descriptors stay. Its socket calls never block, and are
// made as raw system calls (internal/rawsys says why).
type Loop struct{ splice bool }

var _ Connector = Loop{}

func init() {
	Register(Loop{})
	Register(Loop{splice: true})
}

// Name implements Strategy.
func (l Loop) Name() string {
	if l.splice {
		return "loopsplice"
	}
	return "loop"
}

// DataPath implements Strategy.
func (l Loop) DataPath() string {
	if l.splice {
		return DataPathSplice
	}
	return DataPathUserspace
}

// TakeOver implements PairStrategy.
func (l Loop) TakeOver(ctx context.Context, client, backend *net.TCPConn, opts PairOptions, done func(PairResult)) error {
	e, err := pickEngine()
	if err != nil {
		return err
	}
	cfd, err := detach(client)
	if err != nil {
		return err
	}
	bfd, err := detach(backend)
	if err != nil {
		_ = unix.Close(cfd)
		return err
	}
	p := &loopPair{e: e, opts: opts, done: done, splice: l.splice}
	p.sides[client0] = side{fd: cfd, p: p}
	p.sides[backend1] = side{fd: bfd, p: p}
	p.peer = [2]netip.AddrPort{addrPort(client.RemoteAddr()), addrPort(backend.RemoteAddr())}
	// The descriptors are ours now: Go's conns go (their close removes
	// them from Go's poller and leaves the sockets open).
	_ = client.Close()
	_ = backend.Close()
	if ctx.Done() != nil {
		p.stop = context.AfterFunc(ctx, func() { e.requestClose(p) })
	}
	e.add(p)
	return nil
}

// Go's defaults for TCP keep-alive (net.KeepAliveConfig's zero values),
// which l4proxy sets on both sides of every connection; the benchmark's
// runner gives the other designs the same (bench/target).
const (
	KeepAliveIdle     = 15 // seconds before the first probe
	KeepAliveInterval = 15 // seconds between probes
	KeepAliveCount    = 9  // probes before the connection is dropped
)

// keepAliveAfter is how long a backend socket the loop connected itself
// lives before it gets keep-alive. Its first probe could come only after
// KeepAliveIdle (15 s) of silence, so a connection that ends sooner never
// needed it, and does not pay for it: four setsockopt calls, and a kernel
// timer armed and stopped (a build without keep-alive made 2.2% more
// tcp-crr connections per second in a 40-round A/B, docs/performance.md).
// The price is that the first probe of a backend connection silent from
// its start comes KeepAliveIdle after keepAliveAfter, 16 s instead of
// 15; later probes keep Go's timings. The client's socket inherits
// keep-alive from its listener at no cost (Listen), and a Go dialer's
// connection (TakeOver) has it from the dial.
const keepAliveAfter = time.Second

// setSocketDefaults sets what Go's net package sets on an accepted or a
// dialed TCP connection, on a listener whose accepted sockets inherit it
// (Listen). Errors are ignored, as Go ignores them.
func setSocketDefaults(fd int) {
	_ = rawsys.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	setKeepAlive(fd)
}

// setKeepAlive turns on TCP keep-alive with Go's timings.
func setKeepAlive(fd int) {
	_ = rawsys.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	_ = rawsys.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, KeepAliveIdle)
	_ = rawsys.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, KeepAliveInterval)
	_ = rawsys.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, KeepAliveCount)
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	return netip.AddrPort{}
}

// loopPipe is where loopsplice takes its pipes: getPipe, replaced in a
// test to run out of them.
var loopPipe = getPipe

// detach returns a close-on-exec duplicate of c's descriptor, which shares
// its socket and its non-blocking mode.
func detach(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("take over %s: %w", c.RemoteAddr(), os.NewSyscallError("fcntl", derr))
	}
	return nfd, nil
}

// The sides of a pair, and the direction that reads from each.
const (
	client0  = 0 // reads up (client -> backend)
	backend1 = 1 // reads down (backend -> client)
)

// side is one socket of a pair, with its edge-triggered readiness.
type side struct {
	fd       int
	gen      int32
	p        *loopPair
	readable bool
	writable bool
	// hup: epoll reported the peer's FIN or an error. Until then a read
	// shorter than its buffer means the socket is drained (a later byte
	// raises a new edge), which saves the read that would say EAGAIN;
	// after it, reads go on to the end of the stream, which raises none.
	hup bool
	// inOff: EPOLLIN is out of the watch while the flow that reads this
	// side waits for its destination. Every segment that arrives would
	// otherwise wake the loop for a read it cannot make (a bulk transfer
	// woke it about 17 times per splice that could move).
	inOff bool
}

// flow is one direction's bytes in flight: read but not yet written.
type flow struct {
	buf      []byte // userspace: buf[off:n] waits for the destination
	off, n   int
	pipe     *pipe // splice: inPipe bytes wait in pipe
	inPipe   int
	finished bool // the source sent its FIN, passed on
	written  int64
	bulk     bool // a read filled the buffer: loopsplice splices from now on
	fellBack bool // splice: no pipe could be made; copies through buf
	foreign  bool // buf is not the loop's to keep (a target's preamble)
}

func (f *flow) pending() bool { return f.n > f.off || f.inPipe > 0 }

// loopPair is one taken-over connection. Only its engine's goroutine
// touches it after add, except requestClose.
type loopPair struct {
	e      *engine
	opts   PairOptions
	done   func(PairResult)
	stop   func() bool
	splice bool
	peer   [2]netip.AddrPort // for the fallback's warning

	// Connect: the backend side is not connected yet (its fd is -1
	// until a connect is under way); next gives the targets, connectBy
	// is the current attempt's deadline (zero: none); preamble is how
	// many of the bytes written up are the target's preamble.
	connecting bool
	next       func(error) (Target, bool)
	connectBy  time.Time
	preamble   int64

	// keepAliveAt is when the backend socket the loop connected gets
	// keep-alive (keepAliveAfter); zero once it has it, or when it came
	// with it.
	keepAliveAt time.Time
	// limitAt is when the limit that applies is next checked (zero:
	// none); the timer runs for it or for keepAliveAt, the earlier.
	limitAt time.Time

	// Listen's pairs: the watch that accepted the pair, and its links in
	// that watch's list (under e.mu), which the listener's context ends.
	lw           *watch
	lprev, lnext *loopPair

	sides  [2]side
	flows  [2]flow // indexed by the side they read from
	closed bool
	added  bool  // registered with e (under e.mu)
	closeQ bool  // to be closed by request (under e.mu)
	regErr error // watching a socket failed (under e.mu)

	// Idleness: active is when this loop last moved a byte or the pair
	// changed state; seen is the sockets' kernel progress counters as of
	// the last check, valid while sampled.
	active  time.Time
	seen    uint64
	sampled bool

	// The timer wheel's links.
	wprev, wnext *loopPair
	wtick        int64
	inWheel      bool
	queued       bool // in e.again
}

// engine is one event loop.
type engine struct {
	epfd int
	file *os.File // epfd, registered with Go's poller
	rc   syscall.RawConn
	wake int // eventfd: close requests

	mu        sync.Mutex
	sides     []*side // by descriptor
	gen       int32
	live      int
	running   bool
	listeners []*watch // listening sockets, by slot (loopaccept.go)
	listening int
	fresh     []*loopPair // added, timers not armed yet
	closing   []*loopPair // close requests from other goroutines

	// The loop goroutine's own.
	events   []unix.EpollEvent
	batch    []*side
	again    []*loopPair // pairs that used their budget with bytes still ready
	spare    []*loopPair // again's other slice
	wheel    wheel
	now      time.Time
	deadline time.Time
	bufs     [][]byte
	retries  []*watch // listening sockets backing off
	accepts  []*watch
	backlog  bool // a listening socket may have clients left to accept
	// Made once (newEngine): a method value or closure passed to
	// RawConn's methods is an allocation per call.
	pollFn func(fd uintptr) bool
	acc    acceptOp
	// spareFresh is fresh's other slice (takeFresh), the loop's own.
	spareFresh []*loopPair
}

var (
	enginesOnce sync.Once
	engines     []*engine
	enginesErr  error
	engineNext  atomic.Uint32
)

// pickEngine returns one of GOMAXPROCS engines, in turn.
func pickEngine() (*engine, error) {
	enginesOnce.Do(func() {
		for range runtime.GOMAXPROCS(0) {
			e, err := newEngine()
			if err != nil {
				enginesErr = fmt.Errorf("event loop: %w", err)
				return
			}
			engines = append(engines, e)
		}
	})
	if enginesErr != nil {
		return nil, enginesErr
	}
	return engines[int(engineNext.Add(1))%len(engines)], nil
}

func newEngine() (*engine, error) {
	ep, err := rawsys.NewEpoll("epoll")
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = ep.File.Close()
		return nil, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(wake), Pad: -1}
	if err := unix.EpollCtl(ep.FD, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		_ = ep.File.Close()
		_ = unix.Close(wake)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	e := &engine{
		epfd: ep.FD, file: ep.File, rc: ep.Conn, wake: wake,
		events: make([]unix.EpollEvent, 256),
		wheel:  newWheel(time.Now()),
	}
	e.pollFn = e.poll
	e.acc.prepare()
	return e, nil
}

// add registers a pair's sockets and starts the loop goroutine if it is
// not running.
func (e *engine) add(p *loopPair) {
	var failed bool
	e.mu.Lock()
	for i := range p.sides {
		s := &p.sides[i]
		if s.fd < 0 {
			continue // Connect's backend: the loop connects it
		}
		e.register(s)
		// Watched under e.mu, so that the loop can neither close the
		// socket (its descriptor then reused) nor connect the pair's
		// other side before the watch is in place. The add itself
		// reports what is ready now (edge-triggered), and a fresh socket
		// is writable: that event wakes the loop for the new pair.
		if err := e.watch(s); err != nil && p.regErr == nil {
			p.regErr, failed = err, true
		}
	}
	e.live++
	e.fresh = append(e.fresh, p)
	p.added = true
	if p.closeQ || failed { // ctx was done already, or the watch failed
		p.closeQ = true
		e.closing = append(e.closing, p)
	}
	start := !e.running
	e.running = true
	e.mu.Unlock()
	if start {
		go e.run()
	}
	if failed {
		e.wakeUp()
	}
}

// register makes s the side of its descriptor (under e.mu).
func (e *engine) register(s *side) {
	e.gen++
	s.gen = e.gen
	for s.fd >= len(e.sides) {
		e.sides = append(e.sides, make([]*side, max(len(e.sides), 64))...)
	}
	e.sides[s.fd] = s
}

// watch adds s's socket to the epoll set. Edge-triggered: the add itself
// reports what is ready now.
func (e *engine) watch(s *side) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(s.fd), Pad: s.gen}
	if err := rawsys.EpollCtl(e.epfd, unix.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// watchIn puts EPOLLIN in or out of s's watch (see side.inOff). Put back,
// the socket's readiness is reported anew (edge-triggered), so a byte
// that came in the meantime is not missed.
func (e *engine) watchIn(s *side, on bool) {
	if s.inOff != on || s.fd < 0 {
		return
	}
	events := uint32(unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET)
	if on {
		events |= unix.EPOLLIN
	}
	ev := unix.EpollEvent{Events: events, Fd: int32(s.fd), Pad: s.gen}
	if rawsys.EpollCtl(e.epfd, unix.EPOLL_CTL_MOD, s.fd, &ev) == nil {
		s.inOff = !on
	}
}

// drop closes a side's socket (which takes it out of the epoll set).
func (e *engine) drop(s *side) {
	if s.fd < 0 {
		return
	}
	e.mu.Lock()
	if e.sides[s.fd] == s {
		e.sides[s.fd] = nil
	}
	e.mu.Unlock()
	_ = rawsys.Close(s.fd)
	s.fd, s.readable, s.writable, s.hup, s.inOff = -1, false, false, false, false
}

// dial connects p's backend side to the next target; failed is why the
// previous attempt failed (nil for the first). A target that fails at once
// is followed by the next; when next has none, the pair ends.
func (e *engine) dial(p *loopPair, failed error) {
	for {
		t, ok := p.next(failed)
		if !ok {
			e.close(p, EndUnavailable, failed)
			return
		}
		if failed = e.connect(p, t); failed == nil {
			return
		}
	}
}

// connect starts a non-blocking connect to t; the loop finishes it when
// the socket turns writable (connected) or its timer fires.
func (e *engine) connect(p *loopPair, t Target) error {
	p.opts = t.Options
	p.peer[backend1] = t.Addr
	family := unix.AF_INET
	if !t.Addr.Addr().Is4() {
		family = unix.AF_INET6
	}
	fd, err := rawsys.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return dialError(t.Addr, os.NewSyscallError("socket", err))
	}
	_ = rawsys.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) // keep-alive comes later (keepAliveAfter)
	p.keepAliveAt = time.Time{}
	cerr := rawsys.Connect(fd, t.Addr)
	switch cerr {
	case nil, unix.EINPROGRESS, unix.EINTR, unix.EALREADY:
	default:
		_ = rawsys.Close(fd)
		return dialError(t.Addr, os.NewSyscallError("connect", cerr))
	}
	s := &p.sides[backend1]
	s.fd, s.readable, s.writable, s.hup, s.inOff = fd, false, false, false, false
	e.mu.Lock()
	e.register(s)
	e.mu.Unlock()
	if err := e.watch(s); err != nil {
		e.drop(s)
		return dialError(t.Addr, err)
	}
	f := &p.flows[client0]
	f.buf, f.off, f.n, f.foreign = nil, 0, 0, false
	p.preamble = int64(len(t.Preamble))
	if len(t.Preamble) > 0 {
		f.buf, f.n, f.foreign = t.Preamble, len(t.Preamble), true
	}
	p.connectBy = time.Time{}
	if t.ConnectTimeout > 0 {
		p.connectBy = e.now.Add(t.ConnectTimeout)
	}
	e.rearm(p)
	if cerr == nil {
		e.established(p)
	}
	return nil
}

// connected is the end of a connect: the backend side turned writable or
// reported an error. Writable with neither an error nor a hang-up is a
// connect that succeeded (a failed one raises EPOLLERR and EPOLLHUP with
// its EPOLLOUT): only then is SO_ERROR asked. Over loopback the handshake
// is often done before connect returns, and the watch added after it
// reports the writable edge in the loop's next epoll_wait, which an
// accepted client makes at once (see accept).
func (e *engine) connected(p *loopPair) {
	s := &p.sides[backend1]
	if !s.hup {
		e.established(p)
		return
	}
	serr, err := rawsys.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && serr != 0 {
		err = syscall.Errno(serr)
	}
	if err != nil {
		e.redial(p, dialError(p.peer[backend1], os.NewSyscallError("connect", err)))
		return
	}
	e.established(p)
}

// established starts moving a pair's bytes once its backend is connected.
func (e *engine) established(p *loopPair) {
	p.sides[backend1].writable = true // a new connection: a write finds out if not
	p.connecting = false
	p.active = e.now
	p.keepAliveAt = e.now.Add(keepAliveAfter)
	e.rearm(p)
	e.service(p)
}

// redial drops a failed attempt and tries the next target.
func (e *engine) redial(p *loopPair, err error) {
	e.drop(&p.sides[backend1])
	e.dial(p, err)
}

// dialError reads as Go's dial errors do ("dial tcp ADDR: connect: ...").
func dialError(addr netip.AddrPort, err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(addr), Err: err}
}

// requestClose queues p to be ended by its loop, as shut down (from
// another goroutine: its context is done).
func (e *engine) requestClose(p *loopPair) {
	e.mu.Lock()
	queue := !p.closeQ && p.added // not added yet: add queues it
	p.closeQ = true
	if queue {
		e.closing = append(e.closing, p)
	}
	e.mu.Unlock()
	if queue {
		e.wakeUp()
	}
}

// wakeUp makes the loop look at its queues.
func (e *engine) wakeUp() {
	one := [8]byte{1}
	_, _ = rawsys.Write(e.wake, one[:])
}

// run is the loop goroutine: it waits on Go's poller for the epoll set,
// handles what is ready, fires timers, and returns once no pair is left.
func (e *engine) run() {
	e.deadline = time.Time{}
	_ = e.file.SetReadDeadline(time.Time{})
	for {
		e.now = time.Now()
		e.wheel.advance(e.now, e.fire)
		e.retry()
		e.mu.Lock()
		if e.live == 0 && e.listening == 0 && len(e.fresh) == 0 && len(e.closing) == 0 {
			e.running = false
			e.mu.Unlock()
			return
		}
		e.mu.Unlock()
		if next, ok := e.nextTimer(); ok != !e.deadline.IsZero() || ok && !next.Equal(e.deadline) {
			if !ok {
				next = time.Time{}
			}
			e.deadline = next
			_ = e.file.SetReadDeadline(next)
		}
		err := e.rc.Read(e.pollFn)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			// The epoll file is never closed: this cannot happen, and
			// looping on it would spin.
			panic("copy: event loop: " + err.Error())
		}
	}
}

// poll takes what epoll has ready without blocking and handles it, then
// the pairs that had spent their budget. It returns false to park until
// the epoll set is readable or the deadline passes, true to go round the
// loop first (timers, exit, more work).
func (e *engine) poll(fd uintptr) bool {
	n, err := rawsys.EpollWait(int(fd), e.events)
	if err != nil {
		return true // EINTR: try again
	}
	e.now = time.Now()
	e.dispatch(e.events[:n])
	if len(e.again) > 0 {
		e.again, e.spare = e.spare[:0], e.again
		for _, p := range e.spare {
			p.queued = false
			e.service(p)
		}
	}
	if n == len(e.events) || len(e.again) > 0 || e.backlog {
		e.backlog = false
		return true
	}
	e.mu.Lock()
	idle := e.live == 0 && e.listening == 0
	e.mu.Unlock()
	next, ok := e.nextTimer()
	// Go round unless nothing changed for the loop: it must exit, or
	// wait for a timer earlier than the deadline it parks with.
	return idle || ok && (e.deadline.IsZero() || next.Before(e.deadline))
}

// nextTimer is the earliest of the wheel's timers and the listening
// sockets' back-offs.
func (e *engine) nextTimer() (time.Time, bool) {
	next, ok := e.wheel.next()
	for _, w := range e.retries {
		if !ok || w.retryAt.Before(next) {
			next, ok = w.retryAt, true
		}
	}
	return next, ok
}

// dispatch handles one batch of events.
func (e *engine) dispatch(events []unix.EpollEvent) {
	e.batch, e.accepts = e.batch[:0], e.accepts[:0]
	e.mu.Lock()
	fresh, closing := e.takeFresh(), e.closing
	e.closing = nil
	regErrs := make([]error, len(closing))
	for i, p := range closing {
		regErrs[i] = p.regErr
	}
	for i := range events {
		ev := &events[i]
		var s *side
		if fd := int(ev.Fd); ev.Pad >= 0 && fd < len(e.sides) && e.sides[fd] != nil && e.sides[fd].gen == ev.Pad {
			s = e.sides[fd]
		}
		e.batch = append(e.batch, s)
		if slot := int(-2 - ev.Pad); slot >= 0 && slot < len(e.listeners) && e.listeners[slot] != nil {
			e.accepts = append(e.accepts, e.listeners[slot])
		}
	}
	e.mu.Unlock()

	e.start(fresh)
	// Clients first: their connects start before the bytes of this batch
	// are moved, and so run beside them.
	for _, w := range e.accepts {
		e.accept(w)
	}
	if len(e.accepts) > 0 {
		e.mu.Lock()
		fresh := e.takeFresh()
		e.mu.Unlock()
		e.start(fresh)
	}
	for i, s := range e.batch {
		ev := events[i].Events
		if events[i].Pad == -1 {
			var b [8]byte
			_, _ = rawsys.Read(e.wake, b[:])
			continue
		}
		if s == nil || s.p.closed {
			continue
		}
		if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			s.readable = true
		}
		if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			s.hup = true
		}
		if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			s.writable = true
		}
		if s.p.connecting {
			// Nothing moves until the backend is connected: the client's
			// readiness is kept for then.
			if s == &s.p.sides[backend1] && s.writable {
				e.connected(s.p)
			}
			continue
		}
		e.service(s.p)
	}
	for i, p := range closing {
		if err := regErrs[i]; err != nil {
			e.abort(p, err)
		} else {
			e.close(p, EndShutdown, nil)
		}
	}
}

// takeFresh takes the pairs added since it was last called (under e.mu,
// on the loop goroutine). The two slices take turns: start gives this
// one back when done (spareFresh is the loop goroutine's).
func (e *engine) takeFresh() []*loopPair {
	fresh := e.fresh
	e.fresh, e.spareFresh = e.spareFresh[:0], nil
	return fresh
}

// start arms the timers of pairs just added, and starts the connects of
// accepted clients.
func (e *engine) start(fresh []*loopPair) {
	for _, p := range fresh {
		p.active = e.now
		if p.connecting {
			e.dial(p, nil)
		} else {
			e.rearm(p)
		}
	}
	clear(fresh)
	e.spareFresh = fresh[:0]
}

// budget is how many bytes one direction may move before the loop turns to
// other connections: fairness between a bulk transfer and the rest.
const budget = 2 << 20

// service moves what both directions of p can move now.
func (e *engine) service(p *loopPair) {
	for dir := range 2 {
		if p.closed {
			return
		}
		e.pump(p, dir)
	}
}

// pump moves bytes from side dir to the other side until the source has
// nothing ready, the destination is full, the budget is spent, or the
// direction or the pair ends.
func (e *engine) pump(p *loopPair, dir int) {
	src, dst, f := &p.sides[dir], &p.sides[1-dir], &p.flows[dir]
	moved := 0
	for {
		if f.pending() {
			if !dst.writable {
				return
			}
			n, err := e.flush(f, dst.fd)
			if err == unix.EAGAIN {
				dst.writable = false
				e.watchIn(src, false)
				return
			}
			if err != nil {
				e.abort(p, os.NewSyscallError("write", err))
				return
			}
			f.written += int64(n)
			p.active, p.sampled = e.now, false
			if src.inOff && !f.pending() {
				e.watchIn(src, true)
			}
			continue
		}
		if f.finished || !src.readable {
			return
		}
		if moved >= budget {
			if !p.queued {
				p.queued = true
				e.again = append(e.again, p)
			}
			return
		}
		n, short, err := e.fill(p, dir, src.fd)
		switch {
		case err == unix.EAGAIN:
			src.readable = false
			return
		case err != nil:
			e.abort(p, os.NewSyscallError("read", err))
			return
		case n == 0:
			e.finish(p, dir)
			return
		}
		if short && !src.hup {
			src.readable = false // drained: see side.hup
		}
		moved += n
		p.active, p.sampled = e.now, false
	}
}

// fill reads what side dir has ready into the direction's buffer or pipe.
// short reports a read into the buffer that did not fill it (a splice can
// be cut short by the pipe, so it never reports one).
func (e *engine) fill(p *loopPair, dir, fd int) (n int, short bool, err error) {
	f := &p.flows[dir]
	if p.splice && f.bulk && !f.fellBack {
		if f.pipe == nil {
			pp, err := loopPipe()
			if err != nil {
				noteFallback("loopsplice", p.opts.Logger, err, net.TCPAddrFromAddrPort(p.peer[dir]), net.TCPAddrFromAddrPort(p.peer[1-dir]))
				f.fellBack = true
				return e.fill(p, dir, fd)
			}
			f.pipe = pp
		}
		n, err := rawsys.Splice(fd, f.pipe.w, pipeSize)
		if err == unix.EINTR {
			return e.fill(p, dir, fd)
		}
		if err != nil || n <= 0 {
			putPipe(f.pipe) // empty: it is flushed before every fill
			f.pipe = nil
			return 0, false, err
		}
		f.inPipe = int(n)
		return int(n), false, nil
	}
	if f.buf == nil {
		f.buf = e.getBuf(p.opts.bufferSize())
	}
	n, err = rawsys.Read(fd, f.buf)
	if err == unix.EINTR {
		return e.fill(p, dir, fd)
	}
	if err != nil || n <= 0 {
		e.putBuf(f.buf)
		f.buf = nil
		return 0, false, err
	}
	f.off, f.n = 0, n
	if n == len(f.buf) {
		f.bulk = true // a full buffer: splice from now on (loopsplice)
	}
	return n, n < len(f.buf), nil
}

// flush writes what waits in the direction's buffer or pipe to dst.
func (e *engine) flush(f *flow, fd int) (int, error) {
	if f.inPipe > 0 {
		n, err := rawsys.Splice(f.pipe.r, fd, f.inPipe)
		if err == unix.EINTR {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, errors.New("splice wrote nothing")
		}
		f.inPipe -= int(n)
		if f.inPipe == 0 {
			putPipe(f.pipe)
			f.pipe = nil
		}
		return int(n), nil
	}
	n, err := rawsys.Write(fd, f.buf[f.off:f.n])
	if err == unix.EINTR {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	f.off += n
	if f.off == f.n {
		if !f.foreign {
			e.putBuf(f.buf)
		}
		f.buf, f.off, f.n, f.foreign = nil, 0, 0, false
	}
	return n, nil
}

// getBuf and putBuf keep a few spare buffers of the loop's: a buffer is
// held only from a read to the end of its write.
func (e *engine) getBuf(size int) []byte {
	for i := len(e.bufs) - 1; i >= 0; i-- {
		if b := e.bufs[i]; len(b) == size {
			e.bufs = append(e.bufs[:i], e.bufs[i+1:]...)
			return b
		}
	}
	return make([]byte, size)
}

const spareBufs = 16

func (e *engine) putBuf(b []byte) {
	if b != nil && len(e.bufs) < spareBufs {
		e.bufs = append(e.bufs, b)
	}
}

// finish passes a direction's FIN on, and ends the pair when both are done.
func (e *engine) finish(p *loopPair, dir int) {
	p.flows[dir].finished = true
	if p.flows[0].finished && p.flows[1].finished {
		// Both sockets have read their peer's FIN, so closing them sends
		// the FIN that shutdown would (close resets only a socket with
		// unread bytes): one call fewer per connection.
		e.close(p, EndDone, nil)
		return
	}
	_ = rawsys.Shutdown(p.sides[1-dir].fd, unix.SHUT_WR)
	p.active = e.now
	e.rearm(p)
}

// abort ends a pair after an error such as a reset. A side whose outgoing
// direction has not finished is closed with a reset (SO_LINGER 0), so the
// RST travels on; a side already sent its FIN is closed gracefully.
func (e *engine) abort(p *loopPair, err error) {
	if p.closed {
		return
	}
	for dir := range 2 {
		// The side written by direction dir is 1-dir.
		if !p.flows[dir].finished && p.sides[1-dir].fd >= 0 {
			_ = unix.SetsockoptLinger(p.sides[1-dir].fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		}
	}
	e.close(p, EndReset, err)
}

// close ends a pair: its sockets are closed (which takes them out of the
// epoll set), its buffers and pipes given back, and done called. A limit
// that ends a direction with bytes still on their way resets that
// direction's destination, as proxy/tcp's pairs do: a FIN would pass the
// cut stream off as complete.
func (e *engine) close(p *loopPair, reason string, err error) {
	if p.closed {
		return
	}
	p.closed = true
	e.wheel.remove(p)
	if reason != EndDone && reason != EndReset {
		for dir := range 2 {
			src, dst := p.sides[dir].fd, p.sides[1-dir].fd
			if !p.flows[dir].finished && dst >= 0 && (p.flows[dir].pending() || src >= 0 && Unsent(src, dst)) {
				_ = unix.SetsockoptLinger(dst, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
				if err == nil {
					err = ErrCut
				}
			}
		}
	}
	for i := range p.sides {
		e.drop(&p.sides[i])
	}
	e.mu.Lock()
	e.live--
	if p.lw != nil {
		p.lw.unlink(p)
	}
	e.mu.Unlock()
	for i := range p.flows {
		f := &p.flows[i]
		if f.buf != nil && !f.foreign {
			e.putBuf(f.buf)
		}
		f.buf = nil
		if f.pipe != nil {
			if f.inPipe == 0 {
				putPipe(f.pipe)
			} else {
				f.pipe.close() // holds bytes nobody will read
			}
			f.pipe = nil
		}
	}
	if p.stop != nil {
		p.stop()
	}
	sent := max(p.flows[client0].written-p.preamble, 0)
	p.done(PairResult{Sent: sent, Received: p.flows[backend1].written, End: reason, Err: err})
}

// limit is the idle time allowed now, and whether any applies.
func (p *loopPair) limit() (time.Duration, bool) {
	return IdleLimit(p.opts.IdleTimeout, p.opts.TerminationDelay, p.flows[0].finished || p.flows[1].finished)
}

// reason names the limit that is running out.
func (p *loopPair) reason() string {
	return IdleEnd(p.opts.IdleTimeout, p.opts.TerminationDelay, p.flows[0].finished || p.flows[1].finished)
}

// rearm (re)schedules p's timer for the limit that applies now: while
// connecting, the connect's deadline.
func (e *engine) rearm(p *loopPair) {
	if p.connecting {
		if p.connectBy.IsZero() {
			e.wheel.remove(p)
		} else {
			e.wheel.schedule(p, p.connectBy)
		}
		return
	}
	p.sampled = false
	limit, timed := p.limit()
	if timed && limit == 0 {
		e.close(p, p.reason(), nil)
		return
	}
	e.schedule(p, p.active.Add(limit), timed)
}

// schedule arms p's one timer (once connected) for the earlier of its
// limit's check at due, when timed, and its keep-alive's time; with
// neither it is stopped.
func (e *engine) schedule(p *loopPair, due time.Time, timed bool) {
	p.limitAt = time.Time{}
	if timed {
		p.limitAt = due
	}
	if ka := p.keepAliveAt; !ka.IsZero() && (!timed || ka.Before(due)) {
		due, timed = ka, true
	}
	if !timed {
		e.wheel.remove(p)
		return
	}
	e.wheel.schedule(p, due)
}

// fire is p's timer. The pair is idle when this loop moved none of its
// bytes for the limit and the kernel's progress counters of both sockets
// (bytes received plus bytes the peer acknowledged) stood still over a
// check: bytes queued earlier and still draining towards a slow peer count
// as movement, as proxy/tcp's watchdog counts them.
func (e *engine) fire(p *loopPair) {
	if p.closed {
		return
	}
	if p.connecting {
		if p.connectBy.IsZero() {
			return
		}
		if e.now.Before(p.connectBy) {
			e.wheel.schedule(p, p.connectBy)
			return
		}
		e.redial(p, dialError(p.peer[backend1], os.ErrDeadlineExceeded))
		return
	}
	if ka := p.keepAliveAt; !ka.IsZero() && !e.now.Before(ka) {
		setKeepAlive(p.sides[backend1].fd)
		p.keepAliveAt = time.Time{}
	}
	if p.limitAt.IsZero() || e.now.Before(p.limitAt) {
		// Woken for the keep-alive: the limit's check keeps its time
		// (a sample's interval cut short could end a draining pair).
		e.schedule(p, p.limitAt, !p.limitAt.IsZero())
		return
	}
	limit, timed := p.limit()
	if !timed || e.now.Sub(p.active) < limit {
		e.schedule(p, p.active.Add(limit), timed)
		return
	}
	c := p.counters()
	switch {
	case !p.sampled:
		p.seen, p.sampled = c, true
		e.schedule(p, e.now.Add(max(limit/8, time.Millisecond)), true)
	case c != p.seen:
		p.seen, p.active = c, e.now
		e.schedule(p, e.now.Add(limit), true)
	default:
		e.close(p, p.reason(), nil)
	}
}

// counters sums the kernel's progress counters of both sockets.
func (p *loopPair) counters() uint64 {
	var sum uint64
	for i := range p.sides {
		if n, err := Progress(p.sides[i].fd); err == nil {
			sum += n
		}
	}
	return sum
}

// wheel is a hashed timer wheel of 1 ms ticks: scheduling and removing are
// O(1), and a pair's timer is moved only when it fires (activity just
// moves the pair's active time), so a busy connection costs the wheel
// nothing.
type wheel struct {
	origin time.Time
	cur    int64 // the last tick handled
	n      int
	slots  [wheelSlots]*loopPair
	// used has a bit set for every non-empty slot, so that next finds
	// the earliest in 16 words instead of up to 1024 slots: the loop
	// asks on every turn (perf put the slot scan at 0.6 µs a connection
	// under tcp-crr, a timer 100 ms out).
	used [wheelSlots / 64]uint64
}

const (
	wheelSlots = 1024
	wheelTick  = time.Millisecond
)

func newWheel(now time.Time) wheel { return wheel{origin: now} }

func (w *wheel) tickOf(t time.Time) int64 { return int64(t.Sub(w.origin) / wheelTick) }

func (w *wheel) schedule(p *loopPair, due time.Time) {
	w.remove(p)
	t := w.tickOf(due)
	if due.After(w.origin.Add(time.Duration(t) * wheelTick)) {
		t++ // never early
	}
	t = max(t, w.cur+1)
	slot := t % wheelSlots
	p.wtick, p.inWheel, p.wprev, p.wnext = t, true, nil, w.slots[slot]
	if p.wnext != nil {
		p.wnext.wprev = p
	}
	w.slots[slot] = p
	w.used[slot/64] |= 1 << (slot % 64)
	w.n++
}

func (w *wheel) remove(p *loopPair) {
	if !p.inWheel {
		return
	}
	if p.wprev != nil {
		p.wprev.wnext = p.wnext
	} else {
		slot := p.wtick % wheelSlots
		w.slots[slot] = p.wnext
		if p.wnext == nil {
			w.used[slot/64] &^= 1 << (slot % 64)
		}
	}
	if p.wnext != nil {
		p.wnext.wprev = p.wprev
	}
	p.wprev, p.wnext, p.inWheel = nil, nil, false
	w.n--
}

// advance fires every timer due by now.
func (w *wheel) advance(now time.Time, fire func(*loopPair)) {
	target := w.tickOf(now)
	if w.n == 0 || target <= w.cur {
		w.cur = max(w.cur, target)
		return
	}
	steps := min(target-w.cur, wheelSlots)
	for i := int64(1); i <= steps; i++ {
		for p := w.slots[(w.cur+i)%wheelSlots]; p != nil; {
			next := p.wnext
			if p.wtick <= target {
				w.remove(p)
				fire(p)
			}
			p = next
		}
	}
	w.cur = target
}

// next is when the earliest non-empty slot comes round.
func (w *wheel) next() (time.Time, bool) {
	if w.n == 0 {
		return time.Time{}, false
	}
	start := (w.cur + 1) % wheelSlots
	slot, ok := w.firstUsed(start, wheelSlots)
	if !ok {
		if slot, ok = w.firstUsed(0, start); !ok {
			return time.Time{}, false
		}
	}
	i := (slot-start+wheelSlots)%wheelSlots + 1 // ticks after cur
	return w.origin.Add(time.Duration(w.cur+i) * wheelTick), true
}

// firstUsed is the first non-empty slot in [from, to).
func (w *wheel) firstUsed(from, to int64) (int64, bool) {
	for i := from / 64; i*64 < to; i++ {
		word := w.used[i]
		if i == from/64 {
			word &^= 1<<(from%64) - 1 // slots before from
		}
		if word == 0 {
			continue
		}
		slot := i*64 + int64(bits.TrailingZeros64(word))
		if slot >= to {
			return 0, false
		}
		return slot, true
	}
	return 0, false
}
