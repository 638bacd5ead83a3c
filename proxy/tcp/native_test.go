package tcp

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
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
// closed at once. Closed before Serve even started, it ends Serve too.
func TestServeEndsWhenItsListenerCloses(t *testing.T) {
	b := startBackend(t, func(c *net.TCPConn) {})
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			p := &Proxy{Service: single(upstream(t, strategy, b.addr()))}
			ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
			require.NoError(t, err)
			served := make(chan error, 1)
			go func() { served <- p.Serve(ln) }()
			c := dial(t, ln.Addr().String())
			require.NoError(t, c.Close())
			require.Eventually(t, func() bool { return p.ActiveConns() == 0 }, 2*time.Second, time.Millisecond)
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

			early := &Proxy{Service: single(upstream(t, strategy, b.addr()))}
			ln2, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
			require.NoError(t, err)
			require.NoError(t, ln2.Close())
			assert.NoError(t, early.Serve(ln2), "a listener closed before Serve")
			require.NoError(t, early.Shutdown(context.Background()))
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

// The native path over IPv6: the loop connects to an IPv6 backend and the
// PROXY header it sends carries the IPv6 client.
func TestNativeIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	pln := &proxyproto.Listener{Listener: ln}
	defer pln.Close()
	// The backend serves one connection: the header's source and the
	// bytes, echoed.
	got := make(chan string, 1)
	serveOne := func() {
		c, err := pln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 4)
		_, _ = io.ReadFull(c, buf)
		got <- c.RemoteAddr().String() + " " + string(buf)
		_, _ = c.Write(buf)
	}
	for _, strategy := range []string{"loop", "loopsplice"} {
		t.Run(strategy, func(t *testing.T) {
			go serveOne()
			u := upstream(t, strategy, ln.Addr().String())
			u.ProxyProtocol = 2
			p := &Proxy{Service: single(u)}
			_, native := p.connector()
			require.True(t, native)
			pl, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv6loopback})
			require.NoError(t, err)
			served := make(chan error, 1)
			go func() { served <- p.Serve(pl) }()
			defer func() {
				require.NoError(t, p.Shutdown(context.Background()))
				require.NoError(t, <-served)
			}()
			c := dial(t, pl.Addr().String())
			_, err = c.Write([]byte("ping"))
			require.NoError(t, err)
			select {
			case s := <-got:
				assert.Equal(t, c.LocalAddr().String()+" ping", s, "the backend saw the IPv6 client in the PROXY header, then the bytes")
			case <-time.After(3 * time.Second):
				t.Fatal("the backend got nothing")
			}
			buf := make([]byte, 4)
			require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
			_, err = io.ReadFull(c, buf)
			require.NoError(t, err)
			assert.Equal(t, "ping", string(buf))
			require.NoError(t, c.Close())
			require.Eventually(t, func() bool { return p.ActiveConns() == 0 }, 2*time.Second, 5*time.Millisecond)
		})
	}
}

// Both paths walk the upstreams of a connection with picks: after a failed
// dial the next server only when the failed one allows it, at most once
// per server, and ErrNoUpstream when there is none.
func TestPicks(t *testing.T) {
	a := &Upstream{Address: "127.0.0.1:1", TryNextServer: true}
	b := &Upstream{Address: "127.0.0.1:2", TryNextServer: true}
	stop := &Upstream{Address: "127.0.0.1:3"}
	svc := func(ups ...*Upstream) Service {
		var ws []lb.Weighted[*Upstream]
		for _, u := range ups {
			ws = append(ws, lb.Weighted[*Upstream]{Item: u, Weight: 1})
		}
		return lb.New(ws, false)
	}
	failed := errors.New("refused")
	tests := []struct {
		name  string
		svc   Service
		tried []string // the addresses picked while every dial fails
		noUp  bool     // err is ErrNoUpstream
	}{
		{"try next, once per server", svc(a, b), []string{a.Address, b.Address}, false},
		{"no try next: one attempt", svc(stop, a), []string{stop.Address}, false},
		{"nothing to pick", svc(), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := picks{svc: tt.svc}
			var tried []string
			var err error
			for {
				up, ok := k.next(err)
				if !ok {
					break
				}
				tried = append(tried, up.Address)
				err = failed
			}
			assert.Equal(t, tt.tried, tried)
			assert.Equal(t, tt.noUp, errors.Is(k.err(), ErrNoUpstream))
			assert.Equal(t, len(tt.tried) > 0, errors.Is(k.err(), failed))
		})
	}
}
