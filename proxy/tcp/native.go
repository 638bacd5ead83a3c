package tcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/l4bench/l4bench/internal/rawsys"
	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

// The native path: when an entrypoint has nothing to do in Go between
// accept and the first byte (no PROXY header to read, every backend an IP
// address, every upstream on the same copystrat.Connector), Serve gives the
// listener to the strategy's event loop, which watches its descriptor,
// accepts each client as a bare descriptor and connects to the backend
// itself. No net.Conn is made for either socket, no goroutine runs
// per connection, and no dial blocks one. What the Go path does around
// the copy is kept: MaxConns, the picking of upstreams, TryNextServer, the
// dial timeout, PROXY headers sent, the log lines, graceful shutdown.
// A host name, a PROXY header to read or a mix of strategies keeps the Go
// path (accept, dial and hand-over in Go), which every strategy supports.

// connector is the strategy that accepts and connects in its own loop for
// this entrypoint, if the native path can serve it.
func (p *Proxy) connector() (copystrat.Connector, bool) {
	if p.AcceptProxy != nil || p.Service == nil {
		return nil, false
	}
	var cs copystrat.Connector
	for up := range p.Service.All() {
		c, ok := up.strategy().(copystrat.Connector)
		if !ok || cs != nil && c.Name() != cs.Name() {
			return nil, false
		}
		if ap, err := netip.ParseAddrPort(up.Address); err != nil || ap.Addr().Zone() != "" {
			return nil, false
		}
		cs = c
	}
	return cs, cs != nil
}

// closedRecheck is how often Serve checks, on the native path, that its
// listener is still open: closing a net.TCPListener takes it out of the
// loop's epoll sets without an event. Shutdown stops the accepting at once.
const closedRecheck = 250 * time.Millisecond

// serveNative is Serve on the native path: cs accepts in its own loop, and
// this goroutine waits for the end.
func (p *Proxy) serveNative(ln *net.TCPListener, cs copystrat.Connector) error {
	lrc, err := ln.SyscallConn()
	if err != nil {
		return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
	}
	ls, err := cs.Listen(copystrat.Listener{Conn: lrc, Admit: p.admit(cs), Ctx: p.dialContext(), Backoff: p.acceptBackoff})
	if err != nil {
		if errors.Is(err, net.ErrClosed) || p.isShutdown() {
			return nil // closed before Serve got to it, as the Go path's accept would find
		}
		return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
	}
	defer ls.Close()
	if !p.trackListener(ls, true) {
		return nil
	}
	defer p.trackListener(ls, false)
	tick := time.NewTicker(closedRecheck)
	defer tick.Stop()
	for {
		select {
		case <-ls.Done():
			if err := ls.Err(); err != nil && !p.isShutdown() {
				return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
			}
			return nil
		case <-tick.C:
			if lrc.Control(func(uintptr) {}) != nil {
				return nil // ln was closed
			}
		}
	}
}

// acceptBackoff logs a failed accept the loop will retry.
func (p *Proxy) acceptBackoff(err error, wait time.Duration) {
	p.logger().Warn("accept failed; retrying", "entrypoint", p.Name, "err", err, "backoff", wait)
}

// admit is what happens to each client cs accepts: MaxConns and
// tracking, then the picking of its upstreams.
func (p *Proxy) admit(cs copystrat.Connector) func(fd int, client netip.AddrPort) (copystrat.Client, bool) {
	name := cs.Name()
	return func(fd int, client netip.AddrPort) (copystrat.Client, bool) {
		c := &nativeConn{p: p, fd: fd, picks: picks{svc: p.Service}}
		c.log = connLog{p: p, logger: p.logger(), start: time.Now(), clientAP: client, strategy: name}
		if !p.trackConn(c, true) {
			p.refuse(fdCloser(fd))
			return copystrat.Client{}, false
		}
		p.wg.Add(1)
		return copystrat.Client{Next: c.next, Done: c.done}, true
	}
}

// nativeConn is a connection on the native path: the upstreams tried for
// it, its log lines, and its place in the proxy's tracking. The strategy
// calls next and done from its loop.
type nativeConn struct {
	p     *Proxy
	fd    int
	log   connLog
	picks picks
}

// Close implements io.Closer for the proxy's tracking. The strategy ends
// the connection itself when the grace period ends (its context).
func (c *nativeConn) Close() error { return nil }

// next picks the upstream of each attempt as Proxy.dial does (picks).
func (c *nativeConn) next(failed error) (copystrat.Target, bool) {
	up, ok := c.picks.next(failed)
	if !ok {
		return copystrat.Target{}, false
	}
	addr, err := netip.ParseAddrPort(up.Address)
	if err != nil { // connector checked every upstream: cannot happen
		c.picks.errs = append(c.picks.errs, fmt.Errorf("backend address %q: %w", up.Address, err))
		return copystrat.Target{}, false
	}
	var preamble []byte
	if up.ProxyProtocol > 0 {
		local, err := rawsys.Getsockname(c.fd)
		if err != nil {
			c.picks.errs = append(c.picks.errs, os.NewSyscallError("getsockname", err))
			return copystrat.Target{}, false
		}
		src := net.TCPAddrFromAddrPort(c.log.clientAP)
		dst := net.TCPAddrFromAddrPort(local)
		if preamble, err = formatPreamble(up.ProxyProtocol, src, dst, nil); err != nil {
			c.picks.errs = append(c.picks.errs, err)
			return copystrat.Target{}, false
		}
	}
	return copystrat.Target{
		Addr:           addr,
		ConnectTimeout: up.dialTimeout(),
		Preamble:       preamble,
		Options:        c.p.pairOptions(up),
	}, true
}

// done logs the connection's end and untracks it.
func (c *nativeConn) done(r copystrat.PairResult) {
	if r.End == copystrat.EndUnavailable {
		c.log.log(slog.LevelWarn, "backend unavailable; closing client", "err", c.picks.err())
	} else {
		if c.picks.up != nil {
			c.log.backend = c.picks.up.Address
		}
		c.log.ended(r)
	}
	c.p.trackConn(c, false)
	c.p.wg.Done()
}

// fdCloser closes a bare descriptor (a client refused over MaxConns).
type fdCloser int

func (f fdCloser) Close() error { return rawsys.Close(int(f)) }

// connLog writes one connection's log lines. Its attributes are formatted
// only for a line that is logged: slog's With would format them for every
// connection, a per-connection cost at debug level off.
type connLog struct {
	p        *Proxy
	logger   *slog.Logger
	start    time.Time
	client   net.Addr       // the client (or the PROXY header's source)
	clientAP netip.AddrPort // the client, when client is nil (native path)
	backend  string
	strategy string
	early    int64 // payload bytes read with the client's PROXY header
}

func (l *connLog) log(level slog.Level, msg string, args ...any) {
	if !l.logger.Enabled(context.Background(), level) {
		return
	}
	var client string
	if l.client != nil {
		client = l.client.String()
	} else {
		client = l.clientAP.String()
	}
	attrs := append([]any{"entrypoint", l.p.Name, "client", client}, args...)
	if l.backend != "" {
		attrs = append(attrs, "backend", l.backend)
	}
	l.logger.Log(context.Background(), level, msg, attrs...)
}

// ended logs how a connection ended: at debug level a clean close, at
// info one ended by an error.
func (l *connLog) ended(r copystrat.PairResult) {
	r.Sent += l.early
	level, msg := slog.LevelDebug, "connection closed"
	if r.Err != nil {
		level, msg = slog.LevelInfo, "connection ended with error"
	}
	// Checked before the arguments are boxed: at the usual info level a
	// clean close costs nothing here.
	if !l.logger.Enabled(context.Background(), level) {
		return
	}
	args := []any{"bytes_up", r.Sent, "bytes_down", r.Received, "duration", time.Since(l.start), "end", r.End, "strategy", l.strategy}
	if r.Err != nil {
		args = append(args, "err", r.Err)
	}
	l.log(level, msg, args...)
}
