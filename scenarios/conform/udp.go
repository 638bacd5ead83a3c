// Group G of the catalogue: UDP.

package conform

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// udpSetup starts a UDP echo-like backend and returns a connected client.
func udpSetup(ctx context.Context, h *Harness, handle func(pc net.PacketConn, data []byte, from net.Addr)) (*net.UDPConn, Status, string) {
	addr, why, err := h.StartUDP(handle)
	if err != nil {
		return nil, NA, "design did not start: " + err.Error()
	}
	if addr == "" {
		return nil, NA, why
	}
	c, err := udpClient(ctx, addr)
	if err != nil {
		return nil, Fail, err.Error()
	}
	return c, "", ""
}

func udpEcho(pc net.PacketConn, data []byte, from net.Addr) { _, _ = pc.WriteTo(data, from) }

func recvUDP(c *net.UDPConn, d time.Duration) ([]byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 70000)
	n, err := c.Read(buf)
	return buf[:n], err
}

func udpBasic(ctx context.Context, h *Harness) (Status, string) {
	got := make(chan string, 4)
	c, st, obs := udpSetup(ctx, h, func(pc net.PacketConn, data []byte, from net.Addr) {
		got <- string(data)
		_, _ = pc.WriteTo([]byte("world1"), from)
	})
	if c == nil {
		return st, obs
	}
	defer c.Close()
	_, _ = c.Write([]byte("hello"))
	reply, err := recvUDP(c, 2*time.Second)
	if err != nil || string(reply) != "world1" {
		return Fail, fmt.Sprintf("client got %q, %v", reply, err)
	}
	if s := <-got; s != "hello" {
		return Fail, fmt.Sprintf("backend got %q", s)
	}
	return Pass, ""
}

func udpBoundaries(ctx context.Context, h *Harness) (Status, string) {
	c, st, obs := udpSetup(ctx, h, udpEcho)
	if c == nil {
		return st, obs
	}
	defer c.Close()
	for burst := range 50 { // bursts of 20: boundaries, not loss under overload
		var sent [][]byte
		for i := range 20 {
			d := make([]byte, 1+rand.IntN(1472))
			for k := range d {
				d[k] = byte(rand.Uint32())
			}
			if burst == 0 && i == 0 {
				d = []byte("TESTLONG0")
			} else if burst == 0 && i == 1 {
				d = []byte("1TEST")
			}
			sent = append(sent, d)
			_, _ = c.Write(d)
		}
		for i, want := range sent {
			got, err := recvUDP(c, 2*time.Second)
			if err != nil || !bytes.Equal(got, want) {
				return Fail, fmt.Sprintf("datagram %d: got %d bytes, want %d (%v)", burst*20+i, len(got), len(want), err)
			}
		}
	}
	return Pass, ""
}

func udpZeroLength(ctx context.Context, h *Harness) (Status, string) {
	got := make(chan int, 2)
	c, st, obs := udpSetup(ctx, h, func(pc net.PacketConn, data []byte, from net.Addr) {
		got <- len(data)
		_, _ = pc.WriteTo([]byte("zero"), from)
		_, _ = pc.WriteTo(nil, from)
	})
	if c == nil {
		return st, obs
	}
	defer c.Close()
	_, _, _ = c.WriteMsgUDP(nil, nil, nil)
	select {
	case n := <-got:
		if n != 0 {
			return Fail, fmt.Sprintf("backend got %d bytes for an empty datagram", n)
		}
	case <-time.After(2 * time.Second):
		return Fail, "backend never got the empty datagram"
	}
	first, err := recvUDP(c, 2*time.Second)
	if err != nil || string(first) != "zero" {
		return Fail, fmt.Sprintf("client got %q, %v", first, err)
	}
	second, err := recvUDP(c, 2*time.Second)
	if err != nil || len(second) != 0 {
		return Fail, fmt.Sprintf("the backend's empty datagram did not arrive as one (%d bytes, %v)", len(second), err)
	}
	return Pass, ""
}

// udpMaxDatagram sends the largest datagram each way, on IPv4 (65 507
// bytes) and then on ::1 with an IPv6 backend (65 527 bytes).
func udpMaxDatagram(ctx context.Context, h *Harness) (Status, string) {
	if st, obs := udpMaxOnce(ctx, h, 65507); st != Pass {
		return st, obs
	}
	h6, err := h.sub("ipv6")
	if err != nil {
		return Fail, err.Error()
	}
	defer h6.close()
	h6.IPv6 = true
	st, obs := udpMaxOnce(ctx, h6, 65527)
	if st != Pass {
		obs = "on ::1: " + obs
	}
	return st, obs
}

func udpMaxOnce(ctx context.Context, h *Harness, size int) (Status, string) {
	c, st, obs := udpSetup(ctx, h, udpEcho)
	if c == nil {
		return st, obs
	}
	defer c.Close()
	_ = c.SetWriteBuffer(1 << 20)
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(rand.Uint32())
	}
	if _, err := c.Write(want); err != nil {
		return Fail, "send: " + err.Error()
	}
	got, err := recvUDP(c, 2*time.Second)
	switch {
	case err != nil:
		return Fail, fmt.Sprintf("%d-byte datagram not echoed: %v", size, err)
	case len(got) != len(want):
		return Fail, fmt.Sprintf("%d-byte datagram came back as %d bytes (truncated)", size, len(got))
	case !bytes.Equal(got, want):
		return Fail, fmt.Sprintf("%d-byte datagram came back changed", size)
	}
	return Pass, ""
}

func udpSessionPerClient(ctx context.Context, h *Harness) (Status, string) {
	addr, why, err := h.StartUDP(func(pc net.PacketConn, data []byte, from net.Addr) {
		_, _ = pc.WriteTo([]byte(from.String()), from)
	})
	if err != nil {
		return NA, "design did not start: " + err.Error()
	}
	if addr == "" {
		return NA, why
	}
	ask := func(c *net.UDPConn) (string, error) {
		if _, err := c.Write([]byte("?")); err != nil {
			return "", err
		}
		b, err := recvUDP(c, 2*time.Second)
		return string(b), err
	}
	c1, err := udpClient(ctx, addr)
	if err != nil {
		return Fail, err.Error()
	}
	defer c1.Close()
	c2, err := udpClient(ctx, addr)
	if err != nil {
		return Fail, err.Error()
	}
	defer c2.Close()
	p1, err1 := ask(c1)
	p2, err2 := ask(c2)
	p1b, err3 := ask(c1)
	switch {
	case err1 != nil || err2 != nil || err3 != nil:
		return Fail, fmt.Sprintf("no reply: %v %v %v", err1, err2, err3)
	case p1 == p2:
		return Fail, "two clients share one backend-side port " + p1
	case p1 != p1b:
		return Fail, fmt.Sprintf("one client's datagrams came from %s then %s", p1, p1b)
	case !strings.Contains(p1, "127.0.0.1"):
		return Fail, "unexpected peer " + p1
	}
	return Pass, ""
}

// udpClient is a connected UDP socket to addr with room for bursts. It is
// closed when ctx ends, so a cancelled matrix never waits on its reads.
func udpClient(ctx context.Context, addr string) (*net.UDPConn, error) {
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.DialUDP("udp", nil, ra)
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(4 << 20)
	context.AfterFunc(ctx, func() { _ = c.Close() })
	return c, nil
}

// udpRepliesRouted: four clients ask for 0, 1, 2 and 3 replies; the
// backend answers only once all four asked, interleaving the sessions
// (later clients first). Each client must get exactly its own replies,
// in order.
func udpRepliesRouted(ctx context.Context, h *Harness) (Status, string) {
	type req struct {
		id   string
		k    int
		from net.Addr
	}
	var mu sync.Mutex
	var reqs []req
	addr, why, err := h.StartUDP(func(pc net.PacketConn, data []byte, from net.Addr) {
		id, ks, _ := strings.Cut(string(data), ":")
		k, _ := strconv.Atoi(ks)
		mu.Lock()
		defer mu.Unlock()
		reqs = append(reqs, req{id, k, from})
		if len(reqs) < 4 {
			return
		}
		for r := range 3 {
			for i := len(reqs) - 1; i >= 0; i-- {
				if reqs[i].k > r {
					_, _ = pc.WriteTo([]byte(fmt.Sprintf("%s-%d", reqs[i].id, r+1)), reqs[i].from)
				}
			}
		}
	})
	if err != nil || addr == "" {
		return udpNA(why, err)
	}
	var clients []*net.UDPConn
	for i := range 4 {
		c, err := udpClient(ctx, addr)
		if err != nil {
			return Fail, err.Error()
		}
		defer c.Close()
		clients = append(clients, c)
		if _, err := c.Write([]byte(fmt.Sprintf("c%d:%d", i, i))); err != nil {
			return Fail, err.Error()
		}
		if !pause(ctx, 20*time.Millisecond) { // the backend sees them in order
			return cancelled(ctx)
		}
	}
	for i, c := range clients {
		var got []string
		for {
			b, err := recvUDP(c, 500*time.Millisecond)
			if err != nil {
				break
			}
			got = append(got, string(b))
		}
		var want []string
		for r := range i {
			want = append(want, fmt.Sprintf("c%d-%d", i, r+1))
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			return Fail, fmt.Sprintf("client %d asked for %d replies and got [%s]", i, i, strings.Join(got, ","))
		}
	}
	return Pass, ""
}

func udpNA(why string, err error) (Status, string) {
	if err != nil {
		return NA, "design did not start: " + err.Error()
	}
	return NA, why
}

// udpSessionIdleTimeout: datagrams every T/3 for 3T keep one session
// (one backend-side port); after 1.5T idle a new one is made and the
// design's sockets shrink back.
func udpSessionIdleTimeout(ctx context.Context, h *Harness) (Status, string) {
	h.IdleTimeout = UDPTimeout
	addr, why, err := h.StartUDP(func(pc net.PacketConn, data []byte, from net.Addr) {
		_, _ = pc.WriteTo([]byte(from.String()), from)
	})
	if err != nil || addr == "" {
		return udpNA(why, err)
	}
	base := h.FDs()
	c, err := udpClient(ctx, addr)
	if err != nil {
		return Fail, err.Error()
	}
	defer c.Close()
	ask := func() (string, error) {
		if _, err := c.Write([]byte("?")); err != nil {
			return "", err
		}
		b, err := recvUDP(c, time.Second)
		return string(b), err
	}
	first, err := ask()
	if err != nil {
		return Fail, "no reply: " + err.Error()
	}
	for i := range 9 {
		if !pause(ctx, UDPTimeout/3) {
			return cancelled(ctx)
		}
		p, err := ask()
		if err != nil {
			return Fail, fmt.Sprintf("no reply at datagram %d: %v", i+2, err)
		}
		if p != first {
			return Fail, fmt.Sprintf("session changed while active (datagram %d every %s): %s then %s", i+2, UDPTimeout/3, first, p)
		}
	}
	during := h.FDs()
	if !pause(ctx, UDPTimeout*3/2) {
		return cancelled(ctx)
	}
	after := h.FDs()
	p, err := ask()
	switch {
	case err != nil:
		return Fail, "no reply after the session expired: " + err.Error()
	case p == first:
		return Fail, fmt.Sprintf("same backend-side port %s after %s idle (timeout %s)", p, UDPTimeout*3/2, UDPTimeout)
	case base >= 0 && after > base:
		return Fail, fmt.Sprintf("%d sockets after the session expired, %d before it, %d during", after, base, during)
	}
	return Pass, ""
}

// udpManyClients: 1000 client sockets each send 10 datagrams tagged
// (client, seq), a round at a time, resending what got no echo up to 3
// times; nobody may get another's datagram, and every session must end
// after the timeout.
func udpManyClients(ctx context.Context, h *Harness) (Status, string) {
	const clients, rounds, retries = 1000, 10, 3
	h.IdleTimeout = UDPTimeout
	addr, why, err := h.StartUDP(udpEcho)
	if err != nil || addr == "" {
		return udpNA(why, err)
	}
	base := h.FDs()
	cs := make([]*net.UDPConn, clients)
	for i := range cs {
		c, err := udpClient(ctx, addr)
		if err != nil {
			return Fail, fmt.Sprintf("client %d: %v", i, err)
		}
		defer c.Close()
		cs[i] = c
	}
	lost, crossed := 0, ""
	// 100 clients in flight at a time: the catalogue's "rate-limited";
	// a burst of 1000 overflows a design's default socket buffer.
	const window = 100
	for seq := range rounds {
		for lo := 0; lo < clients; lo += window {
			if ctx.Err() != nil {
				return cancelled(ctx)
			}
			pending := map[int]bool{}
			for i := lo; i < min(lo+window, clients); i++ {
				pending[i] = true
			}
			for try := 0; try <= retries && len(pending) > 0 && ctx.Err() == nil; try++ {
				for i := range pending {
					var d [8]byte
					binary.BigEndian.PutUint32(d[:4], uint32(i))
					binary.BigEndian.PutUint32(d[4:], uint32(seq))
					_, _ = cs[i].Write(d[:])
				}
				deadline := time.Now().Add(300 * time.Millisecond)
				for i := range pending {
					// a client whose reply is queued still reads it after
					// the window's deadline passed
					_ = cs[i].SetReadDeadline(later(deadline, time.Now().Add(time.Millisecond)))
					buf := make([]byte, 64)
					for {
						n, err := cs[i].Read(buf)
						if err != nil {
							break
						}
						id, s := binary.BigEndian.Uint32(buf[:4]), binary.BigEndian.Uint32(buf[4:8])
						if n != 8 || int(id) != i {
							crossed = fmt.Sprintf("client %d got client %d's datagram", i, id)
							break
						}
						if int(s) == seq {
							delete(pending, i)
							break
						}
					}
				}
				if try == 0 {
					lost += len(pending)
				}
			}
			if ctx.Err() != nil {
				return cancelled(ctx)
			}
			if crossed != "" {
				return Fail, crossed
			}
			if len(pending) > 0 {
				return Fail, fmt.Sprintf("%d clients got no echo of datagram %d after %d resends", len(pending), seq, retries)
			}
		}
	}
	total := clients * rounds
	if n, ok := fdsBackTo(h, base, UDPTimeout+3*time.Second); base >= 0 && !ok {
		return Fail, fmt.Sprintf("%d sockets %s after the last datagram, %d before: sessions did not end", n, UDPTimeout+3*time.Second, base)
	}
	if lost*100 > total {
		return Lenient, fmt.Sprintf("%d of %d datagrams needed a resend (over 1%%)", lost, total)
	}
	return Pass, fmt.Sprintf("%d of %d datagrams needed a resend", lost, total)
}

// udpSlowSessionIsolation: the backend answers session A only after
// 1.5 s; session B must be answered promptly meanwhile.
func udpSlowSessionIsolation(ctx context.Context, h *Harness) (Status, string) {
	const slow = 1500 * time.Millisecond
	addr, why, err := h.StartUDP(func(pc net.PacketConn, data []byte, from net.Addr) {
		if string(data) == "A" {
			time.AfterFunc(slow, func() { _, _ = pc.WriteTo([]byte("A"), from) })
			return
		}
		_, _ = pc.WriteTo(data, from)
	})
	if err != nil || addr == "" {
		return udpNA(why, err)
	}
	a, err := udpClient(ctx, addr)
	if err != nil {
		return Fail, err.Error()
	}
	defer a.Close()
	b, err := udpClient(ctx, addr)
	if err != nil {
		return Fail, err.Error()
	}
	defer b.Close()
	_, _ = a.Write([]byte("A"))
	var worst time.Duration
	for range 10 {
		start := time.Now()
		_, _ = b.Write([]byte("B"))
		if _, err := recvUDP(b, time.Second); err != nil {
			return Fail, "session B got no reply while A was waiting: " + err.Error()
		}
		worst = max(worst, time.Since(start))
		if !pause(ctx, 50*time.Millisecond) {
			return cancelled(ctx)
		}
	}
	if worst > 100*time.Millisecond {
		return Fail, fmt.Sprintf("session B's slowest reply took %s while A was waiting", worst.Round(time.Millisecond))
	}
	if r, err := recvUDP(a, 2*time.Second); err != nil || string(r) != "A" {
		return Fail, fmt.Sprintf("session A's late reply was lost (%v)", err)
	}
	return Pass, ""
}

// udpBackendUnreachable: the backend's port is closed (ICMP port
// unreachable), then the backend starts; new datagrams must get through
// on the first client's session and on a new one.
func udpBackendUnreachable(ctx context.Context, h *Harness) (Status, string) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return Fail, err.Error()
	}
	backend := pc.LocalAddr().String()
	_ = pc.Close()
	addr, why, err := h.StartUDPTo(backend)
	if err != nil || addr == "" {
		return udpNA(why, err)
	}
	c1, err := udpClient(ctx, addr)
	if err != nil {
		return Fail, err.Error()
	}
	defer c1.Close()
	for range 5 {
		_, _ = c1.Write([]byte("early"))
		if !pause(ctx, 20*time.Millisecond) {
			return cancelled(ctx)
		}
	}
	_, _ = recvUDP(c1, 100*time.Millisecond) // an ICMP error may surface here
	pc, err = net.ListenPacket("udp", backend)
	if err != nil {
		return Fail, "restart backend: " + err.Error()
	}
	h.pc = pc
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	try := func(c *net.UDPConn, msg string) bool {
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			_, _ = c.Write([]byte(msg))
			if b, err := recvUDP(c, 100*time.Millisecond); err == nil && string(b) == msg {
				return true
			}
		}
		return false
	}
	if !try(c1, "again") {
		return Fail, "the first client's datagrams never reached the backend once it was up (2 s)"
	}
	c2, err := udpClient(ctx, addr)
	if err != nil {
		return Fail, err.Error()
	}
	defer c2.Close()
	if !try(c2, "new") {
		return Fail, "a new client got no reply after the backend came up"
	}
	return Pass, ""
}

// udpReplySource: the design listens on 0.0.0.0 and the client sends to
// 127.0.0.2 from a connected socket, which only accepts replies from
// 127.0.0.2:<port>.
func udpReplySource(ctx context.Context, h *Harness) (Status, string) {
	h.Wildcard = true
	addr, why, err := h.StartUDP(udpEcho)
	if err != nil || addr == "" {
		return udpNA(why, err)
	}
	_, port, _ := net.SplitHostPort(addr)
	c, err := udpClient(ctx, net.JoinHostPort("127.0.0.2", port))
	if err != nil {
		return Fail, err.Error()
	}
	defer c.Close()
	_, _ = c.Write([]byte("from-127.0.0.2"))
	if b, err := recvUDP(c, 2*time.Second); err != nil || string(b) != "from-127.0.0.2" {
		// A reply from another source address is dropped by the kernel
		// before a connected socket sees it.
		u, lerr := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
		if lerr != nil {
			return Fail, fmt.Sprintf("no reply from 127.0.0.2:%s (%v)", port, err)
		}
		defer u.Close()
		ra, _ := net.ResolveUDPAddr("udp", net.JoinHostPort("127.0.0.2", port))
		_, _ = u.WriteTo([]byte("probe"), ra)
		_ = u.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 64)
		if _, from, rerr := u.ReadFrom(buf); rerr == nil {
			return Fail, fmt.Sprintf("reply came from %s, not 127.0.0.2:%s, so a connected client drops it", from, port)
		}
		return Fail, fmt.Sprintf("no reply from 127.0.0.2:%s (%v)", port, err)
	}
	return Pass, ""
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
