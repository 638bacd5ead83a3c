package udp

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/l4bench/l4bench/proxy/lb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// udpBackend answers each datagram with handle's replies.
func udpBackend(t *testing.T, handle func(pc net.PacketConn, data []byte, from net.Addr)) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if strings.Contains(err.Error(), "closed") {
					return
				}
				continue
			}
			handle(pc, append([]byte(nil), buf[:n]...), from)
		}
	}()
	t.Cleanup(func() { _ = pc.Close(); <-done })
	return pc.LocalAddr().String()
}

func echo(pc net.PacketConn, data []byte, from net.Addr) { _, _ = pc.WriteTo(data, from) }

func startUDPProxy(t *testing.T, p *Proxy) (*Proxy, string) {
	t.Helper()
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- p.Serve(conn) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, p.Shutdown(ctx))
		require.NoError(t, <-done)
	})
	return p, conn.LocalAddr().String()
}

func to(addrs ...string) Service {
	var items []lb.Weighted[string]
	for _, a := range addrs {
		items = append(items, lb.Weighted[string]{Item: a, Weight: 1})
	}
	return lb.New(items, false)
}

func client(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	require.NoError(t, err)
	c, err := net.DialUDP("udp", nil, raddr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func recv(t *testing.T, c *net.UDPConn, d time.Duration) ([]byte, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 70000)
	n, err := c.Read(buf)
	return buf[:n], err
}

func TestDatagramSizes(t *testing.T) {
	_, addr := startUDPProxy(t, &Proxy{Service: to(udpBackend(t, echo))})
	c := client(t, addr)
	require.NoError(t, c.SetWriteBuffer(1<<20))
	require.NoError(t, c.SetReadBuffer(1<<20))
	for _, size := range []int{0, 1, 1472, 9000, 65507} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(rand.Uint32())
			}
			_, _, err := c.WriteMsgUDP(data, nil, nil)
			require.NoError(t, err)
			got, err := recv(t, c, 2*time.Second)
			require.NoError(t, err)
			assert.Equal(t, size, len(got), "datagram kept whole")
			assert.True(t, bytes.Equal(data, got), "content kept")
		})
	}
}

func TestBoundariesKept(t *testing.T) {
	_, addr := startUDPProxy(t, &Proxy{Service: to(udpBackend(t, echo))})
	c := client(t, addr)
	require.NoError(t, c.SetReadBuffer(4<<20))
	// Bursts of 20 stay within default socket buffers: this is about
	// boundaries and content, not loss under overload.
	for burst := range 10 {
		var sent [][]byte
		for i := range 20 {
			d := make([]byte, 1+rand.IntN(1472))
			d[0] = byte(burst*20 + i)
			sent = append(sent, d)
			_, err := c.Write(d)
			require.NoError(t, err)
		}
		for i := range sent {
			got, err := recv(t, c, 2*time.Second)
			require.NoError(t, err, "datagram %d", burst*20+i)
			assert.Equal(t, sent[i], got, "datagram %d", burst*20+i)
		}
	}
}

func TestClientsKeptApart(t *testing.T) {
	// The backend replies with the peer address it saw: every client must
	// get only its own replies, and one stable proxy port per client.
	p, addr := startUDPProxy(t, &Proxy{Service: to(udpBackend(t, func(pc net.PacketConn, data []byte, from net.Addr) {
		_, _ = pc.WriteTo([]byte(string(data)+"|"+from.String()), from)
	}))})
	const clients = 50
	seen := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client(t, addr)
			var peer string
			for j := range 5 {
				msg := fmt.Sprintf("c%d-%d", i, j)
				_, err := c.Write([]byte(msg))
				assert.NoError(t, err)
				got, err := recv(t, c, 2*time.Second)
				if !assert.NoError(t, err) {
					return
				}
				parts := strings.SplitN(string(got), "|", 2)
				assert.Equal(t, msg, parts[0])
				if peer == "" {
					peer = parts[1]
				}
				assert.Equal(t, peer, parts[1], "one session per client")
			}
			mu.Lock()
			seen[peer] = fmt.Sprint(i)
			mu.Unlock()
		}()
	}
	wg.Wait()
	assert.Len(t, seen, clients, "each client has its own backend socket")
	assert.Equal(t, clients, p.Sessions())
}

func TestSessionTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	p, addr := startUDPProxy(t, &Proxy{Service: to(udpBackend(t, func(pc net.PacketConn, data []byte, from net.Addr) {
		_, _ = pc.WriteTo([]byte(from.String()), from)
	})), Timeout: timeout})
	c := client(t, addr)
	ask := func() string {
		_, err := c.Write([]byte("?"))
		require.NoError(t, err)
		got, err := recv(t, c, 2*time.Second)
		require.NoError(t, err)
		return string(got)
	}
	first := ask()
	for range 6 { // active for 2 timeouts: same session
		time.Sleep(timeout / 3)
		assert.Equal(t, first, ask())
	}
	require.Eventually(t, func() bool { return p.Sessions() == 0 }, 2*time.Second, 10*time.Millisecond, "idle session expires")
	assert.NotEqual(t, first, ask(), "a new session after expiry")
}

func TestLateRepliesWithinSession(t *testing.T) {
	const timeout = 600 * time.Millisecond
	_, addr := startUDPProxy(t, &Proxy{Service: to(udpBackend(t, func(pc net.PacketConn, data []byte, from net.Addr) {
		go func() {
			for i := range 3 { // replies spread over most of the timeout
				time.Sleep(150 * time.Millisecond)
				_, _ = pc.WriteTo([]byte(fmt.Sprint(i)), from)
			}
		}()
	})), Timeout: timeout})
	c := client(t, addr)
	_, err := c.Write([]byte("go"))
	require.NoError(t, err)
	for i := range 3 {
		got, err := recv(t, c, 2*time.Second)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprint(i), string(got))
	}
}

func TestStuckSessionDoesNotBlockOthers(t *testing.T) {
	// Session A is stuck waiting: its backend receives every datagram and
	// never answers, so a proxy that waited for a reply before reading the
	// next datagram, or that served sessions in turn, would hold B behind
	// A's 100. Session B must still be answered at once, and A's datagrams
	// must have reached the backend (the stuck session existed).
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var stuck net.Addr
	var stuckCount int
	var mu sync.Mutex
	_, addr := startUDPProxy(t, &Proxy{Service: to(udpBackend(t, func(pc net.PacketConn, data []byte, from net.Addr) {
		if string(data) == "A" {
			mu.Lock()
			stuck = from
			stuckCount++
			mu.Unlock()
			return
		}
		_, _ = pc.WriteTo(data, from)
	}))})
	a, b := client(t, addr), client(t, addr)
	count := func() int { mu.Lock(); defer mu.Unlock(); return stuckCount }
	// The first datagram makes the session; the rest follow once it is
	// dialled (up to maxPending wait while it is, more are dropped).
	_, err := a.Write([]byte("A"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return count() == 1 }, 2*time.Second, time.Millisecond)
	for range 99 {
		_, err := a.Write([]byte("A"))
		require.NoError(t, err)
	}
	for range 20 {
		start := time.Now()
		_, err := b.Write([]byte("B"))
		require.NoError(t, err)
		got, err := recv(t, b, time.Second)
		require.NoError(t, err)
		assert.Equal(t, "B", string(got))
		assert.Less(t, time.Since(start), 100*time.Millisecond)
	}
	assert.Eventually(t, func() bool { return count() == 100 }, 2*time.Second, 10*time.Millisecond,
		"every datagram of the stuck session reaches its backend, none answered (got %d)", count())
	mu.Lock()
	defer mu.Unlock()
	assert.NotNil(t, stuck)
}

func TestBackendComesBack(t *testing.T) {
	// Reserve a port, leave it closed (ICMP port unreachable), then start
	// the backend there: datagrams must flow again, the listener alive.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	backendAddr := pc.LocalAddr().String()
	require.NoError(t, pc.Close())
	_, addr := startUDPProxy(t, &Proxy{Service: to(backendAddr), Timeout: 5 * time.Second})
	c := client(t, addr)
	for range 3 {
		_, err := c.Write([]byte("lost"))
		require.NoError(t, err)
		time.Sleep(20 * time.Millisecond)
	}
	pc, err = net.ListenPacket("udp", backendAddr)
	require.NoError(t, err)
	defer pc.Close()
	go func() {
		buf := make([]byte, 100)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	require.Eventually(t, func() bool {
		if _, err := c.Write([]byte("back")); err != nil {
			return false
		}
		got, err := recv(t, c, 200*time.Millisecond)
		return err == nil && string(got) == "back"
	}, 3*time.Second, 10*time.Millisecond)
}

func TestReplyFromAddressClientUsed(t *testing.T) {
	// Listening on 0.0.0.0, a client connected to 127.0.0.2 must get its
	// reply from 127.0.0.2, or its connected socket drops it.
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4zero})
	require.NoError(t, err)
	p := &Proxy{Service: to(udpBackend(t, echo)), Logger: slog.New(slog.DiscardHandler)}
	done := make(chan error, 1)
	go func() { done <- p.Serve(conn) }()
	defer func() {
		require.NoError(t, p.Shutdown(context.Background()))
		<-done
	}()
	port := conn.LocalAddr().(*net.UDPAddr).Port
	c := client(t, fmt.Sprintf("127.0.0.2:%d", port))
	_, err = c.Write([]byte("hi"))
	require.NoError(t, err)
	got, err := recv(t, c, 2*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "hi", string(got))
}

// slowFirst is a service whose first pick blocks until release is closed,
// standing in for a slow name lookup or dial of one session's backend.
type slowFirst struct {
	Service
	picks   atomic.Int32
	release chan struct{}
}

func (s *slowFirst) Next() (string, bool) {
	if s.picks.Add(1) == 1 {
		<-s.release
	}
	return s.Service.Next()
}

// TestSlowSessionStartBlocksNoOne: a session whose backend takes long to
// pick and dial must not stall other clients, and the datagrams it got
// meanwhile reach its backend in order once it is ready.
func TestSlowSessionStartBlocksNoOne(t *testing.T) {
	addr := udpBackend(t, echo)
	svc := &slowFirst{Service: to(addr), release: make(chan struct{})}
	_, paddr := startUDPProxy(t, &Proxy{Service: svc})
	released := false
	release := func() {
		if !released {
			close(svc.release)
			released = true
		}
	}
	defer release()

	slow := client(t, paddr)
	for _, m := range []string{"a1", "a2", "a3"} {
		_, err := slow.Write([]byte(m))
		require.NoError(t, err)
	}
	time.Sleep(50 * time.Millisecond) // the slow session is being made

	fast := client(t, paddr)
	start := time.Now()
	_, err := fast.Write([]byte("b"))
	require.NoError(t, err)
	buf := make([]byte, 16)
	require.NoError(t, fast.SetReadDeadline(time.Now().Add(2*time.Second)))
	n, err := fast.Read(buf)
	require.NoError(t, err, "another client's session was blocked by a slow one")
	assert.Equal(t, "b", string(buf[:n]))
	assert.Less(t, time.Since(start), time.Second)

	release()
	require.NoError(t, slow.SetReadDeadline(time.Now().Add(2*time.Second)))
	for _, want := range []string{"a1", "a2", "a3"} {
		n, err := slow.Read(buf)
		require.NoError(t, err)
		assert.Equal(t, want, string(buf[:n]), "datagrams queued during the dial keep their order")
	}
}
