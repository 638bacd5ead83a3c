// Package udp forwards UDP datagrams with traefik's session model: one
// session per client address, each with its own connected socket towards
// the backend picked when the session starts; replies go back to the
// client from the address it sent to; sessions end after an idle timeout.
//
//	p := &udp.Proxy{Service: lb.New([]lb.Weighted[string]{{Item: "127.0.0.1:53", Weight: 1}}, true)}
//	go p.Serve(conn)
//	defer p.Shutdown(ctx)
package udp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/l4bench/l4bench/proxy/lb"
)

// MaxDatagram is the largest UDP payload (IPv6 without jumbograms); every
// buffer holds one whole, so no datagram is ever truncated.
const MaxDatagram = 65535

var bufPool = sync.Pool{New: func() any { b := make([]byte, MaxDatagram+1); return &b }}

// Service picks the backend address of a new session.
type Service = lb.Picker[string]

// Proxy serves one UDP entrypoint. Set the fields before Serve.
type Proxy struct {
	// Name labels log lines (the entrypoint's name).
	Name string
	// Service picks each session's backend. Required.
	Service Service
	// Timeout ends a session idle this long in both directions. Zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger

	mu       sync.Mutex
	conn     *net.UDPConn
	sessions map[netip.AddrPort]*session
	closed   bool
	wg       sync.WaitGroup
}

// DefaultTimeout is a UDP session's idle timeout when none is set.
const DefaultTimeout = 3 * time.Second

func (p *Proxy) timeout() time.Duration {
	if p.Timeout <= 0 {
		return DefaultTimeout
	}
	return p.Timeout
}

func (p *Proxy) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.Default()
	}
	return p.Logger
}

// session is one client's flow. It is made on the read loop without
// blocking it: picking, resolving and dialling the backend happen in the
// session's own goroutine, which then becomes its reply relay. Datagrams
// that arrive meanwhile wait in a short queue, so order is kept.
type session struct {
	client netip.AddrPort
	local  netip.Addr // the address the client sent to, when the listener is a wildcard
	last   atomic.Int64

	// Set once by the session's goroutine before ready; read after it.
	backend *net.UDPConn
	address string
	ready   atomic.Bool

	mu      sync.Mutex
	pending [][]byte // datagrams that came while the backend was being dialled
	dropped int      // datagrams that found the pending queue full

	sendErrs, relayErrs atomic.Int64
}

// maxPending bounds the datagrams a session holds while its backend is
// being dialled; more are dropped and counted, never queued without bound.
const maxPending = 64

func (s *session) touch() { s.last.Store(time.Now().UnixNano()) }

// Sessions is the number of live sessions.
func (p *Proxy) Sessions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sessions)
}

// Serve reads client datagrams from conn until it is closed or Shutdown
// is called.
func (p *Proxy) Serve(conn *net.UDPConn) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return conn.Close()
	}
	p.conn = conn
	p.sessions = map[netip.AddrPort]*session{}
	p.mu.Unlock()

	wildcard := enablePktinfo(conn)
	buf := make([]byte, MaxDatagram+1)
	oob := make([]byte, 128)
	for {
		n, oobn, flags, addr, err := conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// An ICMP error for an earlier reply, or a passing failure: the
			// listener must keep serving other clients.
			p.logger().Debug("udp read", "entrypoint", p.Name, "err", err)
			continue
		}
		if flags&syscall.MSG_TRUNC != 0 {
			p.logger().Warn("udp datagram truncated; dropped", "entrypoint", p.Name, "client", addr)
			continue
		}
		addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
		var local netip.Addr
		if wildcard {
			local = parsePktinfo(oob[:oobn])
		}
		p.forward(addr, local, buf[:n])
	}
}

// forward sends one client datagram to the client's session, creating it
// when needed. A session that ended under it is replaced once.
func (p *Proxy) forward(client netip.AddrPort, local netip.Addr, data []byte) {
	for attempt := 0; attempt < 2; attempt++ {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		s, ok := p.sessions[client]
		if !ok {
			s = &session{client: client, local: local, pending: [][]byte{bytes.Clone(data)}}
			s.touch()
			p.sessions[client] = s
			p.wg.Add(1)
			go p.runSession(s)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		s.touch()
		if !s.ready.Load() && s.enqueue(data) {
			return
		}
		if err := p.send(s, data); !errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// enqueue holds a datagram while the session's backend is being dialled.
// It returns false when the session became ready meanwhile.
func (s *session) enqueue(data []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready.Load() {
		return false
	}
	if len(s.pending) < maxPending {
		s.pending = append(s.pending, bytes.Clone(data))
	} else {
		s.dropped++
	}
	return true
}

// send writes one datagram to the session's backend. The first failure of
// a session is logged; the rest are counted and reported when it ends.
func (p *Proxy) send(s *session, data []byte) error {
	err := writeDatagram(s.backend, data)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		if s.sendErrs.Add(1) == 1 {
			p.logger().Warn("udp write to backend failed; later failures of this session are counted",
				"entrypoint", p.Name, "client", s.client, "backend", s.address, "err", err)
		}
	}
	return err
}

// writeDatagram sends one datagram on a connected socket; a pending ICMP
// error from an earlier datagram (backend was down) is reported by the
// kernel on this send and consumed, so the datagram is sent again once.
func writeDatagram(c *net.UDPConn, data []byte) error {
	_, _, err := c.WriteMsgUDP(data, nil, nil)
	if errors.Is(err, syscall.ECONNREFUSED) {
		_, _, err = c.WriteMsgUDP(data, nil, nil)
	}
	return err
}

// runSession picks and dials the session's backend off the read loop,
// sends what queued meanwhile in order, then relays the replies.
func (p *Proxy) runSession(s *session) {
	defer p.wg.Done()
	backend, addr, err := p.dialBackend()
	if err != nil {
		p.mu.Lock()
		if p.sessions[s.client] == s {
			delete(p.sessions, s.client)
		}
		p.mu.Unlock()
		s.mu.Lock()
		lost := len(s.pending) + s.dropped
		s.mu.Unlock()
		p.logger().Warn("udp session failed; its datagrams are dropped", "entrypoint", p.Name,
			"client", s.client, "backend", addr, "dropped", lost, "err", err)
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = backend.Close()
		return
	}
	s.backend, s.address = backend, addr
	p.mu.Unlock()

	s.mu.Lock()
	for _, d := range s.pending {
		_ = p.send(s, d)
	}
	s.pending = nil
	s.ready.Store(true)
	dropped := s.dropped
	s.mu.Unlock()
	if dropped > 0 {
		p.logger().Warn("udp datagrams dropped while the backend was dialled", "entrypoint", p.Name,
			"client", s.client, "backend", addr, "dropped", dropped, "queue", maxPending)
	}
	p.logger().Debug("udp session started", "entrypoint", p.Name, "client", s.client, "backend", addr)
	p.relayReplies(s)
}

// dialBackend picks a backend and connects a UDP socket to it.
func (p *Proxy) dialBackend() (*net.UDPConn, string, error) {
	addr, ok := p.Service.Next()
	if !ok {
		return nil, "", errors.New("udp: no backend available")
	}
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, addr, err
	}
	c, err := net.DialUDP("udp", nil, raddr)
	return c, addr, err
}

// relayReplies copies the backend's datagrams back to the session's
// client until the session has been idle for the timeout.
func (p *Proxy) relayReplies(s *session) {
	defer p.endSession(s)
	rc, err := s.backend.SyscallConn()
	if err != nil {
		return
	}
	var oob []byte
	if s.local.IsValid() {
		oob = pktinfoFrom(s.local)
	}
	timeout := p.timeout()
	for {
		deadline := time.Unix(0, s.last.Load()).Add(timeout)
		if !time.Now().Before(deadline) {
			return
		}
		_ = s.backend.SetReadDeadline(deadline)
		var (
			buf  *[]byte
			n    int
			rerr error
		)
		// Hold a buffer only while a datagram is ready, not while waiting.
		err := rc.Read(func(fd uintptr) bool {
			buf = bufPool.Get().(*[]byte)
			n, rerr = syscall.Read(int(fd), *buf)
			if rerr == syscall.EAGAIN || rerr == syscall.EINTR {
				bufPool.Put(buf)
				return false
			}
			return true
		})
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue // re-check the idle time, which client datagrams extend
			}
			return // closed
		}
		if rerr != nil {
			bufPool.Put(buf)
			// ECONNREFUSED: the backend's port is closed for now (ICMP);
			// keep the session so datagrams flow once it is back.
			p.relayFailed(s, rerr)
			continue
		}
		s.touch()
		_, _, werr := p.conn.WriteMsgUDPAddrPort((*buf)[:n], oob, s.client)
		bufPool.Put(buf)
		if werr != nil {
			if errors.Is(werr, net.ErrClosed) {
				return
			}
			p.relayFailed(s, werr)
		}
	}
}

// relayFailed logs a session's first reply failure and counts the rest.
func (p *Proxy) relayFailed(s *session, err error) {
	if s.relayErrs.Add(1) == 1 {
		p.logger().Warn("udp reply relay failed; later failures of this session are counted",
			"entrypoint", p.Name, "client", s.client, "backend", s.address, "err", err)
	}
}

func (p *Proxy) endSession(s *session) {
	p.mu.Lock()
	if p.sessions[s.client] == s {
		delete(p.sessions, s.client)
	}
	p.mu.Unlock()
	_ = s.backend.Close()
	attrs := []any{"entrypoint", p.Name, "client", s.client, "backend", s.address}
	if se, re := s.sendErrs.Load(), s.relayErrs.Load(); se+re > 0 {
		p.logger().Info("udp session ended with failures", append(attrs, "send_failures", se, "relay_failures", re)...)
		return
	}
	p.logger().Debug("udp session ended", attrs...)
}

// Shutdown closes the listener and every session, and waits for the
// proxy's goroutines. UDP has no connections to drain, so ctx only bounds
// the wait.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	if p.conn != nil {
		_ = p.conn.Close()
	}
	for _, s := range p.sessions {
		if s.backend != nil { // nil while being dialled
			_ = s.backend.Close()
		}
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
