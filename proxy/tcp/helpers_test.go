package tcp

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/l4bench/l4bench/internal/payload"
	copystrat "github.com/l4bench/l4bench/proxy/copy"
	"github.com/l4bench/l4bench/proxy/lb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// strategies are every registered copy strategy, and for each Connector
// its hand-over path too: a new one is tested here with no edit.
var strategies = func() []string {
	names := copystrat.Names()
	for _, name := range copystrat.Names() {
		if s, _ := copystrat.Lookup(name); s != nil {
			if _, ok := s.(copystrat.Connector); ok {
				names = append(names, name+handOver)
			}
		}
	}
	return names
}()

// handOver marks a strategy name run on the hand-over path: its backends
// are named by host name (localhost), which keeps the Go accept and dial
// where an IP address would take the native path.
const handOver = "+handover"

// newUpstream is the upstream of a test's strategy name (see strategies).
func newUpstream(strategy, addr string) (*Upstream, error) {
	name, byHost := strings.CutSuffix(strategy, handOver)
	s, err := copystrat.Lookup(name)
	if err != nil {
		return nil, err
	}
	if byHost {
		addr = strings.Replace(addr, "127.0.0.1:", "localhost:", 1)
	}
	return &Upstream{Address: addr, Strategy: s, TerminationDelay: -1}, nil
}

// backend is a loopback TCP server running handle for each connection.
type backend struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startBackend(t *testing.T, handle func(c *net.TCPConn)) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := &backend{ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(b.close)
	return b
}

func (b *backend) addr() string { return b.ln.Addr().String() }

func (b *backend) close() {
	_ = b.ln.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		_ = c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// startProxy runs a Proxy for the upstreams on a loopback listener.
func startProxy(t *testing.T, p *Proxy) string {
	t.Helper()
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- p.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
		require.NoError(t, <-done)
	})
	return ln.Addr().String()
}

// single builds a service of one upstream.
func single(u *Upstream) Service {
	return lb.New([]lb.Weighted[*Upstream]{{Item: u, Weight: 1}}, false)
}

func upstream(t *testing.T, strategy, addr string) *Upstream {
	t.Helper()
	u, err := newUpstream(strategy, addr)
	require.NoError(t, err)
	return u
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.TCPConn)
}

var (
	pattern = payload.Write
	drain   = payload.Drain
)

// readEOFWithin reports what a read returns within d: the error (io.EOF,
// a reset) or a timeout.
func readEnd(c net.Conn, d time.Duration) error {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return err
		}
	}
}

// closedCtx is a context that is already done: Shutdown closes at once.
func closedCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
