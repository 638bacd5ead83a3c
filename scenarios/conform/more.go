package conform

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"
)

// fdsBackTo waits up to d for the design's fd count to return to base.
func fdsBackTo(h *Harness, base int, d time.Duration) (int, bool) {
	deadline := time.Now().Add(d)
	for {
		n := h.FDs()
		if n <= base || time.Now().After(deadline) {
			return n, n <= base
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fullCloseTeardown(ctx context.Context, h *Harness) (string, string) {
	addr, err := h.Start(func(b *net.TCPConn) {
		_, _ = io.Copy(b, b)
		_ = b.CloseWrite()
	})
	if err != nil {
		return NA, "design did not start: " + err.Error()
	}
	base := h.FDs()
	c, err := dial(ctx, addr)
	if err != nil {
		return Fail, err.Error()
	}
	_, _ = c.Write([]byte("bye"))
	_ = c.CloseWrite()
	data, err := io.ReadAll(c)
	_ = c.Close()
	if err != nil || string(data) != "bye" {
		return Fail, fmt.Sprintf("echo got %q, %v", data, err)
	}
	if base < 0 {
		return Pass, "(fds not readable)"
	}
	if n, ok := fdsBackTo(h, base, time.Second); !ok {
		return Fail, fmt.Sprintf("%d sockets open 1 s after both FINs, %d before the connection", n, base)
	}
	return Pass, ""
}

func clientCloseFlushes(ctx context.Context, h *Harness) (string, string) {
	const size = 4 << 20
	type res struct {
		n   int64
		sum [32]byte
		err error
	}
	got := make(chan res, 1)
	c, st, obs := setup(ctx, h, func(b *net.TCPConn) {
		time.Sleep(time.Second) // start reading late
		n, sum, err := drain(b)
		got <- res{n, sum, err}
	})
	if c == nil {
		return st, obs
	}
	sent, err := pattern(c, 4, size)
	_ = c.Close() // close() at once, not a half-close
	if err != nil {
		return Fail, "client write: " + err.Error()
	}
	select {
	case r := <-got:
		if r.err != nil || r.n != size || r.sum != sent {
			return Fail, fmt.Sprintf("backend got %d of %d bytes (checksum match %v, %v)", r.n, size, r.sum == sent, r.err)
		}
	case <-time.After(10 * time.Second):
		return Fail, "backend never got EOF"
	}
	return Pass, ""
}

func finThenRSTNoLoss(ctx context.Context, h *Harness) (string, string) {
	c, st, obs := setup(ctx, h, func(b *net.TCPConn) {
		_, _ = b.Write(bytes.Repeat([]byte{7}, 64<<10))
		_ = b.CloseWrite()
		time.Sleep(200 * time.Millisecond)
		_ = b.SetLinger(0)
	})
	if c == nil {
		return st, obs
	}
	defer c.Close()
	time.Sleep(400 * time.Millisecond) // read only after the reset
	n, err := io.Copy(io.Discard, c)
	if err != nil || n != 64<<10 {
		return Fail, fmt.Sprintf("client got %d of %d bytes, then %v", n, 64<<10, err)
	}
	return Pass, ""
}

func sendBeforeAccept(ctx context.Context, h *Harness) (string, string) {
	h.AcceptDelay = 500 * time.Millisecond
	got := make(chan []byte, 1)
	c, st, obs := setup(ctx, h, func(b *net.TCPConn) {
		data, _ := io.ReadAll(b)
		got <- data
	})
	if c == nil {
		return st, obs
	}
	defer c.Close()
	want := make([]byte, 16<<10)
	for i := range want {
		want[i] = byte(i * 7)
	}
	_, _ = c.Write(want)
	_ = c.CloseWrite()
	select {
	case data := <-got:
		if !bytes.Equal(data, want) {
			return Fail, fmt.Sprintf("backend got %d of %d bytes (in order: %v)", len(data), len(want), bytes.HasPrefix(want, data))
		}
	case <-time.After(5 * time.Second):
		return Fail, "backend never got the early bytes and EOF"
	}
	return Pass, ""
}

func abortBeforeConnect(ctx context.Context, h *Harness) (string, string) {
	addr, err := h.Start(func(b *net.TCPConn) { _, _ = io.Copy(io.Discard, b) })
	if err != nil {
		return NA, "design did not start: " + err.Error()
	}
	base := h.FDs()
	for i := range 1000 {
		c, err := dial(ctx, addr)
		if err != nil {
			return Fail, fmt.Sprintf("connect %d: %v", i+1, err)
		}
		if i%2 == 1 {
			_ = c.SetLinger(0) // every other one as a reset
		}
		_ = c.Close()
	}
	c, err := dial(ctx, addr)
	if err != nil {
		return Fail, "design stopped serving: " + err.Error()
	}
	_ = c.Close()
	if base >= 0 {
		if n, ok := fdsBackTo(h, base, 3*time.Second); !ok {
			return Fail, fmt.Sprintf("%d sockets open 3 s after 1000 aborted connections, %d before", n, base)
		}
	}
	return Pass, ""
}

func manyConcurrent(ctx context.Context, h *Harness) (string, string) {
	addr, err := h.Start(func(b *net.TCPConn) {
		_, _ = io.Copy(b, b)
		_ = b.CloseWrite()
	})
	if err != nil {
		return NA, "design did not start: " + err.Error()
	}
	const conns = 1000
	bad := onConns(ctx, addr, conns, func(i int, c *net.TCPConn) string {
		msg := make([]byte, 4+64<<10)
		copy(msg, fmt.Sprintf("%04d", i))
		for k := 4; k < len(msg); k++ {
			msg[k] = byte(rand.Uint32())
		}
		go func() { _, _ = c.Write(msg); _ = c.CloseWrite() }()
		got, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(got, msg) {
			return fmt.Sprintf("conn %d got %d of %d bytes back (own: %v, %v)", i, len(got), len(msg), bytes.HasPrefix(got, msg[:4]), err)
		}
		return ""
	})
	if len(bad) > 0 {
		return Fail, fmt.Sprintf("%d of %d connections wrong, first: %s", len(bad), conns, bad[0])
	}
	return Pass, ""
}

func churnNoLeak(ctx context.Context, h *Harness) (string, string) {
	addr, err := h.Start(func(b *net.TCPConn) { _, _ = io.Copy(b, b) })
	if err != nil {
		return NA, "design did not start: " + err.Error()
	}
	warm := func(n int) error {
		buf := make([]byte, 4)
		for i := range n {
			c, err := dial(ctx, addr)
			if err != nil {
				return fmt.Errorf("connect %d: %w", i+1, err)
			}
			_, _ = c.Write([]byte("ping"))
			_, err = io.ReadFull(c, buf)
			_ = c.Close()
			if err != nil {
				return fmt.Errorf("exchange %d: %w", i+1, err)
			}
		}
		return nil
	}
	if err := warm(100); err != nil { // pools and caches settle first
		return Fail, err.Error()
	}
	time.Sleep(300 * time.Millisecond)
	base := h.FDs()
	if err := warm(10000); err != nil {
		return Fail, err.Error()
	}
	if base >= 0 {
		if n, ok := fdsBackTo(h, base, 3*time.Second); !ok {
			return Fail, fmt.Sprintf("%d sockets open after 10000 sequential connections, %d before", n, base)
		}
	}
	return Pass, ""
}

// onConns dials n conns to addr at once and runs f on each; it returns
// what went wrong (f returns "" when nothing did).
func onConns(ctx context.Context, addr string, n int, f func(i int, c *net.TCPConn) string) []string {
	errs := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial(ctx, addr)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer c.Close()
			if e := f(i, c); e != "" {
				errs <- e
			}
		}()
	}
	wg.Wait()
	close(errs)
	var out []string
	for e := range errs {
		out = append(out, e)
	}
	return out
}

// udpSetup starts a UDP echo-like backend and returns a connected client.
func udpSetup(ctx context.Context, h *Harness, handle func(pc net.PacketConn, data []byte, from net.Addr)) (*net.UDPConn, string, string) {
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

func udpBasic(ctx context.Context, h *Harness) (string, string) {
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

func udpBoundaries(ctx context.Context, h *Harness) (string, string) {
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

func udpZeroLength(ctx context.Context, h *Harness) (string, string) {
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
func udpMaxDatagram(ctx context.Context, h *Harness) (string, string) {
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

func udpMaxOnce(ctx context.Context, h *Harness, size int) (string, string) {
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

func udpSessionPerClient(ctx context.Context, h *Harness) (string, string) {
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
