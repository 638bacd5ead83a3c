package tcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

// ErrNoUpstream is returned when a service has no server to pick.
var ErrNoUpstream = errors.New("tcp: no upstream available")

// AcceptProxy makes an entrypoint require a PROXY protocol header (v1 or
// v2) from clients whose address is in Trusted; any other client is closed
// without anything being forwarded.
type AcceptProxy struct {
	// Trusted lists the networks allowed to send PROXY headers.
	Trusted []netip.Prefix
	// HeaderTimeout bounds the wait for a complete header. Zero means
	// DefaultHeaderTimeout.
	HeaderTimeout time.Duration
}

// DefaultHeaderTimeout is the wait for a PROXY header when none is set:
// the spec suggests at least 3 seconds.
const DefaultHeaderTimeout = 3 * time.Second

func (a *AcceptProxy) headerTimeout() time.Duration {
	if a.HeaderTimeout <= 0 {
		return DefaultHeaderTimeout
	}
	return a.HeaderTimeout
}

func (a *AcceptProxy) trusts(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range a.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Proxy serves one TCP entrypoint. Set the fields before Serve; they are
// not changed afterwards.
type Proxy struct {
	// Name labels log lines (the entrypoint's name).
	Name string
	// Service picks the upstream of each connection. Required.
	Service Service
	// IdleTimeout closes a connection with no traffic either way for this
	// long. Zero means never.
	IdleTimeout time.Duration
	// MaxConns caps the connections handled at once: a connection accepted
	// over the cap is closed at once and counted in Refused. Zero means no
	// cap.
	MaxConns int
	// AcceptProxy, when set, requires a PROXY header from trusted clients.
	AcceptProxy *AcceptProxy
	// Logger receives one debug line per connection and errors. Nil means
	// slog.Default().
	Logger *slog.Logger

	refused atomic.Int64 // connections closed at once for MaxConns

	mu        sync.Mutex
	listeners map[io.Closer]struct{} // listeners, and what else Shutdown closes to stop accepting
	conns     map[io.Closer]struct{}
	shutdown  bool
	forced    bool          // the grace period ran out: close anything new at once
	idle      chan struct{} // closed when conns becomes empty during shutdown
	wg        sync.WaitGroup

	dialOnce   sync.Once
	dialCtx    context.Context // cancelled when the grace period runs out
	cancelDial context.CancelFunc
}

// dialContext is the context of backend dials: Shutdown cancels it when
// the grace period ends, so a dial to a backend that never answers cannot
// hold the process past its grace.
func (p *Proxy) dialContext() context.Context {
	p.dialOnce.Do(func() { p.dialCtx, p.cancelDial = context.WithCancel(context.Background()) })
	return p.dialCtx
}

func (p *Proxy) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.Default()
	}
	return p.Logger
}

// Serve accepts connections on ln until ln is closed or Shutdown is
// called, handling each in its own goroutine, or on the native path (see
// native.go) handing each to its strategy's event loop. It returns nil
// after Shutdown or once ln is closed, else the accept error.
func (p *Proxy) Serve(ln *net.TCPListener) error {
	if !p.trackListener(ln, true) {
		_ = ln.Close()
		return nil
	}
	defer p.trackListener(ln, false)
	if p.AcceptProxy != nil {
		allowFullV2Headers()
	}
	if cs, ok := p.connector(); ok {
		return p.serveNative(ln, cs)
	}
	var backoff time.Duration
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if p.isShutdown() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				p.logger().Warn("accept failed; retrying", "entrypoint", p.Name, "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
		}
		backoff = 0
		if !p.trackConn(c, true) {
			p.refuse(c)
			continue
		}
		p.wg.Add(1)
		go p.handleConn(c)
	}
}

// isTemporary matches accept errors that pass, such as running out of
// file descriptors.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (p *Proxy) isShutdown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.shutdown
}

func (p *Proxy) trackListener(ln io.Closer, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.listeners == nil {
		p.listeners = map[io.Closer]struct{}{}
	}
	if add {
		if p.shutdown {
			return false
		}
		p.listeners[ln] = struct{}{}
	} else {
		delete(p.listeners, ln)
	}
	return true
}

func (p *Proxy) trackConn(c io.Closer, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		p.conns = map[io.Closer]struct{}{}
	}
	if add {
		if p.shutdown || p.MaxConns > 0 && len(p.conns) >= p.MaxConns {
			return false
		}
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
		if p.shutdown && len(p.conns) == 0 && p.idle != nil {
			close(p.idle)
			p.idle = nil
		}
	}
	return true
}

// refuse closes a connection accepted during shutdown or over MaxConns.
// Over the cap it is counted, and logged at warn with the running count
// for the first refusal and every 1000th after it.
func (p *Proxy) refuse(c io.Closer) {
	defer c.Close() // after counting: whoever sees the close sees the count
	if p.isShutdown() {
		return
	}
	if n := p.refused.Add(1); n%1000 == 1 {
		p.logger().Warn("connection refused: maxConns reached", "entrypoint", p.Name, "max_conns", p.MaxConns, "refused_total", n)
	}
}

// Refused is the number of connections closed at once because MaxConns
// connections were open.
func (p *Proxy) Refused() int64 { return p.refused.Load() }

// replaceConn swaps the closer of a connection (the raw client conn for
// the pair once both sides exist), keeping it tracked.
func (p *Proxy) replaceConn(old, new io.Closer) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.forced {
		return false
	}
	delete(p.conns, old)
	p.conns[new] = struct{}{}
	return true
}

// Shutdown stops accepting at once, lets open connections finish until
// ctx is done, then closes what is left and waits for every goroutine of
// the proxy. It returns ctx's error when connections had to be cut.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.shutdown = true
	for ln := range p.listeners {
		_ = ln.Close()
	}
	var idle chan struct{}
	if len(p.conns) > 0 {
		idle = make(chan struct{})
		p.idle = idle
	}
	p.mu.Unlock()

	var err error
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
			err = ctx.Err()
			p.mu.Lock()
			p.forced = true
			p.dialContext()
			p.cancelDial()
			for c := range p.conns {
				_ = c.Close()
			}
			p.mu.Unlock()
		}
	}
	p.wg.Wait()
	p.dialContext()
	p.cancelDial()
	return err
}

// ActiveConns is the number of connections being handled.
func (p *Proxy) ActiveConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// handleConn serves one client connection from accept to close.
func (p *Proxy) handleConn(client *net.TCPConn) {
	var tracked io.Closer = client
	handedOver := false // a PairStrategy's done untracks the connection
	defer func() {
		if !handedOver {
			p.trackConn(tracked, false)
			p.wg.Done()
		}
	}()

	start := time.Now()
	srcAddr, dstAddr := client.RemoteAddr(), client.LocalAddr()
	cl := &connLog{p: p, logger: p.logger(), start: start, client: srcAddr}
	log := cl.log

	var early []byte // payload bytes read together with a PROXY header
	if p.AcceptProxy != nil {
		h, rest, err := p.readProxyHeader(client)
		if err != nil {
			log(slog.LevelInfo, "connection refused", "reason", err)
			_ = client.Close()
			return
		}
		early = rest
		// Only TCP addresses are passed on; LOCAL, UNSPEC and AF_UNIX
		// headers leave the real connection's addresses (spec §2.2).
		src, sok := h.SourceAddr.(*net.TCPAddr)
		dst, dok := h.DestinationAddr.(*net.TCPAddr)
		if h.Command.IsProxy() && sok && dok {
			srcAddr, dstAddr = src, dst
			cl.client = src
		}
	}

	up, backend, err := p.dial()
	if errors.Is(err, context.Canceled) {
		log(slog.LevelInfo, "closing client: the grace period ended during the backend dial")
		_ = client.Close()
		return
	}
	if err != nil {
		log(slog.LevelWarn, "backend unavailable; closing client", "err", err)
		_ = client.Close()
		return
	}
	cl.backend = up.Address

	if err := writePreamble(backend, up.ProxyProtocol, srcAddr, dstAddr, early); err != nil {
		log(slog.LevelWarn, "write to backend failed", "err", err)
		_ = client.SetLinger(0)
		_ = client.Close()
		_ = backend.Close()
		return
	}

	strategy := up.strategy()
	cl.strategy, cl.early = strategy.Name(), int64(len(early))
	ended := cl.ended

	var ds copystrat.DirectionStrategy
	switch s := strategy.(type) {
	case copystrat.PairStrategy:
		handedOver = p.handOver(s, client, backend, up, ended, log)
		return
	case copystrat.DirectionStrategy:
		ds = s
	default: // an Upstream built in code with a strategy of neither kind
		log(slog.LevelError, "strategy is neither a DirectionStrategy nor a PairStrategy; closing the connection", "strategy", strategy.Name())
		_ = client.Close()
		_ = backend.Close()
		return
	}

	pr := newPair(client, backend, p.IdleTimeout, up.terminationDelay())
	if !p.replaceConn(client, pr) {
		_ = pr.Close()
		return
	}
	tracked = pr

	upCopier := ds.NewCopier(backend, client, up.Copy)
	downCopier := ds.NewCopier(client, backend, up.Copy)

	var sent int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		sent = pr.copyClientToBackend(upCopier)
	}()
	received := pr.copyBackendToClient(downCopier)
	<-done

	end, endErr := pr.result()
	ended(copystrat.PairResult{Sent: sent, Received: received, End: end, Err: endErr})
}

// handOver gives the connection to a PairStrategy, whose own loop carries
// it from here: the grace period's end (dialContext) ends it, and its done
// logs the end and untracks it. It reports whether the strategy took it;
// if not, both sockets are closed here.
func (p *Proxy) handOver(ps copystrat.PairStrategy, client, backend *net.TCPConn, up *Upstream, ended func(copystrat.PairResult), log func(slog.Level, string, ...any)) bool {
	err := ps.TakeOver(p.dialContext(), client, backend, p.pairOptions(up), func(r copystrat.PairResult) {
		ended(r)
		p.trackConn(client, false)
		p.wg.Done()
	})
	if err != nil {
		log(slog.LevelWarn, "cannot hand the connection over; closing it", "strategy", ps.Name(), "err", err)
		_ = client.SetLinger(0)
		_ = client.Close()
		_ = backend.Close()
		return false
	}
	return true
}

// dial picks an upstream and connects to it, trying further servers when
// the upstream allows it.
func (p *Proxy) dial() (*Upstream, *net.TCPConn, error) {
	k := picks{svc: p.Service}
	var failed error
	for {
		up, ok := k.next(failed)
		if !ok {
			return nil, nil, k.err()
		}
		d := net.Dialer{Timeout: up.dialTimeout()}
		c, err := d.DialContext(p.dialContext(), "tcp", up.Address)
		if err == nil {
			return up, c.(*net.TCPConn), nil
		}
		failed = err
	}
}

// picks is one connection's walk over its service's upstreams, the same on
// both paths: the first pick, then after each failed dial the next one,
// only when the failed upstream allows it and at most once per server.
type picks struct {
	svc  Service
	up   *Upstream // the last pick
	n    int
	errs []error
}

// next is the upstream to dial after failed (nil before the first dial),
// or false when none is left (err says why).
func (k *picks) next(failed error) (*Upstream, bool) {
	if failed != nil {
		k.errs = append(k.errs, failed)
		if !k.up.TryNextServer || k.n >= max(k.svc.Size(), 1) {
			return nil, false
		}
	}
	up, ok := k.svc.Next()
	if !ok {
		k.errs = append(k.errs, ErrNoUpstream)
		return nil, false
	}
	k.n++
	k.up = up
	return up, true
}

// err is every failure of the walk, and ErrNoUpstream if it ran out.
func (k *picks) err() error { return errors.Join(k.errs...) }

// pairOptions are what a PairStrategy is told for a connection to up.
func (p *Proxy) pairOptions(up *Upstream) copystrat.PairOptions {
	return copystrat.PairOptions{Options: up.Copy, IdleTimeout: p.IdleTimeout, TerminationDelay: up.terminationDelay()}
}

// writePreamble sends the PROXY header (if any) and the payload bytes that
// came with the client's header, in one write.
func writePreamble(backend *net.TCPConn, version int, src, dst net.Addr, early []byte) error {
	buf, err := formatPreamble(version, src, dst, early)
	if err != nil || len(buf) == 0 {
		return err
	}
	_, err = backend.Write(buf)
	return err
}

// formatPreamble is the PROXY header of the given version (none for 0)
// followed by early.
func formatPreamble(version int, src, dst net.Addr, early []byte) ([]byte, error) {
	var buf []byte
	if version > 0 {
		h := proxyproto.HeaderProxyFromAddrs(byte(version), src, dst)
		b, err := h.Format()
		if err != nil {
			return nil, fmt.Errorf("format PROXY v%d header: %w", version, err)
		}
		buf = b
	}
	return append(buf, early...), nil
}
