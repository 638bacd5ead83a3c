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
	// Timeout ends a session idle this long in both directions. Zero means 3s.
	Timeout time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger

	mu       sync.Mutex
	conn     *net.UDPConn
	sessions map[netip.AddrPort]*session
	closed   bool
	wg       sync.WaitGroup
}

func (p *Proxy) timeout() time.Duration {
	if p.Timeout <= 0 {
		return 3 * time.Second
	}
	return p.Timeout
}

func (p *Proxy) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.Default()
	}
	return p.Logger
}

// session is one client's flow. Its reader goroutine owns the backend
// socket and ends the session when idle.
type session struct {
	client  netip.AddrPort
	local   netip.Addr // the address the client sent to, when the listener is a wildcard
	backend *net.UDPConn
	address string
	last    atomic.Int64
}

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
// when needed. A closed session is replaced once.
func (p *Proxy) forward(client netip.AddrPort, local netip.Addr, data []byte) {
	for attempt := 0; attempt < 2; attempt++ {
		s, err := p.session(client, local)
		if err != nil {
			p.logger().Warn("udp session failed", "entrypoint", p.Name, "client", client, "err", err)
			return
		}
		s.touch()
		err = writeDatagram(s.backend, data)
		if err == nil || !errors.Is(err, net.ErrClosed) {
			if err != nil {
				p.logger().Debug("udp write to backend", "entrypoint", p.Name, "backend", s.address, "err", err)
			}
			return
		}
	}
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

func (p *Proxy) session(client netip.AddrPort, local netip.Addr) (*session, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, net.ErrClosed
	}
	if s, ok := p.sessions[client]; ok {
		return s, nil
	}
	addr, ok := p.Service.Next()
	if !ok {
		return nil, errors.New("udp: no backend available")
	}
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	backend, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return nil, err
	}
	s := &session{client: client, local: local, backend: backend, address: addr}
	s.touch()
	p.sessions[client] = s
	p.wg.Add(1)
	go p.relayReplies(s)
	p.logger().Debug("udp session started", "entrypoint", p.Name, "client", client, "backend", addr)
	return s, nil
}

// relayReplies copies the backend's datagrams back to the session's
// client until the session has been idle for the timeout.
func (p *Proxy) relayReplies(s *session) {
	defer p.wg.Done()
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
			continue
		}
		s.touch()
		_, _, werr := p.conn.WriteMsgUDPAddrPort((*buf)[:n], oob, s.client)
		bufPool.Put(buf)
		if werr != nil && errors.Is(werr, net.ErrClosed) {
			return
		}
	}
}

func (p *Proxy) endSession(s *session) {
	p.mu.Lock()
	if p.sessions[s.client] == s {
		delete(p.sessions, s.client)
	}
	p.mu.Unlock()
	_ = s.backend.Close()
	p.logger().Debug("udp session ended", "entrypoint", p.Name, "client", s.client, "backend", s.address)
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
		_ = s.backend.Close()
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
