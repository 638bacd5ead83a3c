package tcp

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/l4bench/l4bench/internal/blackhole"
	copystrat "github.com/l4bench/l4bench/proxy/copy"
	"github.com/l4bench/l4bench/proxy/lb"
)

// The native path serves an entrypoint only when nothing has to happen in
// Go between accept and the first byte.
func TestConnectorChoice(t *testing.T) {
	up := func(strategy, addr string) *Upstream {
		u, err := newUpstream(strategy, addr)
		require.NoError(t, err)
		return u
	}
	svc := func(ups ...*Upstream) Service {
		var ws []lb.Weighted[*Upstream]
		for _, u := range ups {
			ws = append(ws, lb.Weighted[*Upstream]{Item: u, Weight: 1})
		}
		return lb.New(ws, false)
	}
	tests := []struct {
		name string
		p    *Proxy
		want string // the strategy, "" for the Go path
	}{
		{"loop at an IPv4 address", &Proxy{Service: svc(up("loop", "127.0.0.1:80"))}, "loop"},
		{"loopsplice at an IPv6 address", &Proxy{Service: svc(up("loopsplice", "[::1]:80"))}, "loopsplice"},
		{"several servers, one strategy", &Proxy{Service: svc(up("loop", "127.0.0.1:80"), up("loop", "127.0.0.2:80"))}, "loop"},
		{"nested services", &Proxy{Service: lb.NewTree([]lb.Weighted[Service]{
			{Item: svc(up("loop", "127.0.0.1:80")), Weight: 1},
			{Item: svc(up("loop", "127.0.0.2:80")), Weight: 2},
		}, false)}, "loop"},
		{"a strategy that is not a Connector", &Proxy{Service: svc(up("splice", "127.0.0.1:80"))}, ""},
		{"strategies mixed", &Proxy{Service: svc(up("loop", "127.0.0.1:80"), up("loopsplice", "127.0.0.2:80"))}, ""},
		{"a Connector mixed with another kind", &Proxy{Service: svc(up("loop", "127.0.0.1:80"), up("pooled", "127.0.0.2:80"))}, ""},
		{"a host name", &Proxy{Service: svc(up("loop", "127.0.0.1:80"), up("loop", "localhost:80"))}, ""},
		{"an IPv6 zone", &Proxy{Service: svc(up("loop", "[fe80::1%lo]:80"))}, ""},
		{"PROXY headers to read", &Proxy{Service: svc(up("loop", "127.0.0.1:80")), AcceptProxy: &AcceptProxy{}}, ""},
		{"no server to pick", &Proxy{Service: svc()}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, ok := tt.p.connector()
			assert.Equal(t, tt.want != "", ok)
			if ok {
				assert.Equal(t, tt.want, cs.Name())
			}
		})
	}
}

// Closing the listener itself, without Shutdown, ends Serve on either
// path (the native one notices within acceptRecheck), and the port is
// closed at once.
func TestServeEndsWhenItsListenerCloses(t *testing.T) {
	b := startBackend(t, func(c *net.TCPConn) {})
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			p := &Proxy{Service: single(upstream(t, strategy, b.addr()))}
			ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
			require.NoError(t, err)
			served := make(chan error, 1)
			go func() { served <- p.Serve(ln) }()
			c := dial(t, ln.Addr().String()) // Serve is running
			require.NoError(t, c.Close())
			require.NoError(t, ln.Close())
			_, err = net.DialTimeout("tcp", ln.Addr().String(), time.Second)
			assert.Error(t, err, "the port still accepts after its listener closed")
			select {
			case err := <-served:
				assert.NoError(t, err)
			case <-time.After(2 * time.Second):
				t.Fatal("Serve did not return after its listener closed")
			}
			require.NoError(t, p.Shutdown(context.Background()))
		})
	}
}

// On the native path a connect under way holds no goroutine (the loop
// connects); on the hand-over path each is a goroutine blocked in its
// dial. This is what tells the two paths apart from outside.
func TestNativeDialHoldsNoGoroutine(t *testing.T) {
	bh, err := blackhole.Listen()
	require.NoError(t, err)
	defer bh.Close()
	const clients = 30
	for _, strategy := range strategies {
		s, err := newUpstream(strategy, bh.Addr())
		require.NoError(t, err)
		s.DialTimeout = time.Minute // under way for the whole count
		p := &Proxy{Service: single(s)}
		_, native := p.connector()
		t.Run(strategy, func(t *testing.T) {
			addr := startProxy(t, p)
			for range clients {
				dial(t, addr)
			}
			require.Eventually(t, func() bool { return p.ActiveConns() == clients }, 2*time.Second, 5*time.Millisecond)
			if native {
				assert.Zero(t, connGoroutines(), "goroutines of connections while %d connects are under way", clients)
			} else {
				// Tracked at accept, a connection's goroutine may not
				// have started yet.
				require.Eventually(t, func() bool { return connGoroutines() == clients }, 2*time.Second, 5*time.Millisecond,
					"goroutines of connections while %d dials are under way", clients)
			}
			assert.ErrorIs(t, p.Shutdown(closedCtx()), context.Canceled, "the connects were cut")
		})
	}
	// Every registered Connector takes the native path at an IP address.
	for _, name := range copystrat.Names() {
		s, _ := copystrat.Lookup(name)
		if _, ok := s.(copystrat.Connector); ok {
			_, native := (&Proxy{Service: single(&Upstream{Address: netip.MustParseAddrPort("127.0.0.1:1").String(), Strategy: s})}).connector()
			assert.True(t, native, name)
		}
	}
}

// connGoroutines counts the goroutines serving a connection on the Go
// path.
func connGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "tcp.(*Proxy).handleConn(")
		}
		buf = make([]byte, 2*len(buf))
	}
}
