package tcp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/l4bench/l4bench/internal/blackhole"
	"github.com/l4bench/l4bench/internal/fdlimit"
	copystrat "github.com/l4bench/l4bench/proxy/copy"
	"github.com/l4bench/l4bench/proxy/lb"
)

// TestTransferBothWays sends seeded data both ways at once through every
// strategy and checks byte counts and checksums.
func TestTransferBothWays(t *testing.T) {
	sizes := []int64{0, 1, 1000, 65537, 1 << 20, 64 << 20}
	if testing.Short() {
		sizes = sizes[:5]
	}
	for _, strategy := range strategies {
		for _, size := range sizes {
			t.Run(fmt.Sprintf("%s/%d", strategy, size), func(t *testing.T) {
				type result struct {
					n   int64
					sum [32]byte
				}
				fromClient := make(chan result, 1)
				backendSent := make(chan [32]byte, 1)
				b := startBackend(t, func(c *net.TCPConn) {
					wrote := make(chan [32]byte, 1)
					go func() {
						sum, _ := pattern(c, 2, size)
						_ = c.CloseWrite()
						wrote <- sum
					}()
					n, sum, _ := drain(c)
					backendSent <- <-wrote // keep the conn open until written
					fromClient <- result{n, sum}
				})
				addr := startProxy(t, &Proxy{Service: single(upstream(t, strategy, b.addr()))})
				c := dial(t, addr)
				type written struct {
					sum [32]byte
					err error
				}
				done := make(chan written, 1)
				go func() {
					sum, err := pattern(c, 1, size)
					_ = c.CloseWrite()
					done <- written{sum, err}
				}()
				n, got, err := drain(c)
				w := <-done
				sent := w.sum
				require.NoError(t, err)
				require.NoError(t, w.err)
				assert.Equal(t, size, n, "bytes backend -> client")
				assert.Equal(t, <-backendSent, got, "checksum backend -> client")
				select {
				case r := <-fromClient:
					assert.Equal(t, size, r.n, "bytes client -> backend")
					assert.Equal(t, sent, r.sum, "checksum client -> backend")
				case <-time.After(5 * time.Second):
					t.Fatal("backend did not see the client's EOF")
				}
			})
		}
	}
}

func TestHalfClose(t *testing.T) {
	for _, strategy := range strategies {
		t.Run(strategy+"/client first", func(t *testing.T) {
			// The client sends a request and FIN; the backend answers after
			// its EOF, proving its write side is still open.
			got := make(chan string, 1)
			b := startBackend(t, func(c *net.TCPConn) {
				req, _ := io.ReadAll(c)
				got <- string(req)
				time.Sleep(200 * time.Millisecond)
				_, _ = c.Write([]byte("response after EOF"))
			})
			addr := startProxy(t, &Proxy{Service: single(upstream(t, strategy, b.addr()))})
			c := dial(t, addr)
			_, err := c.Write([]byte("request"))
			require.NoError(t, err)
			require.NoError(t, c.CloseWrite())
			assert.Equal(t, "request", <-got)
			resp, err := io.ReadAll(c)
			require.NoError(t, err)
			assert.Equal(t, "response after EOF", string(resp))
		})
		t.Run(strategy+"/backend first", func(t *testing.T) {
			got := make(chan string, 1)
			b := startBackend(t, func(c *net.TCPConn) {
				_, _ = c.Write([]byte("hello"))
				_ = c.CloseWrite()
				data, _ := io.ReadAll(c)
				got <- string(data)
			})
			addr := startProxy(t, &Proxy{Service: single(upstream(t, strategy, b.addr()))})
			c := dial(t, addr)
			hello, err := io.ReadAll(c)
			require.NoError(t, err)
			assert.Equal(t, "hello", string(hello))
			time.Sleep(100 * time.Millisecond)
			_, err = c.Write([]byte("data"))
			require.NoError(t, err)
			require.NoError(t, c.CloseWrite())
			assert.Equal(t, "data", <-got)
		})
	}
}

func TestResetPropagates(t *testing.T) {
	for _, strategy := range strategies {
		t.Run(strategy+"/backend resets", func(t *testing.T) {
			b := startBackend(t, func(c *net.TCPConn) {
				_, _ = c.Write(make([]byte, 1000))
				time.Sleep(50 * time.Millisecond)
				_ = c.SetLinger(0)
			})
			addr := startProxy(t, &Proxy{Service: single(upstream(t, strategy, b.addr()))})
			c := dial(t, addr)
			start := time.Now()
			err := readEnd(c, 2*time.Second)
			assert.Less(t, time.Since(start), time.Second)
			assert.True(t, errors.Is(err, syscall.ECONNRESET), "client should see the reset, got %v", err)
		})
		t.Run(strategy+"/client resets", func(t *testing.T) {
			ended := make(chan error, 1)
			b := startBackend(t, func(c *net.TCPConn) {
				ended <- readEnd(c, 2*time.Second)
			})
			addr := startProxy(t, &Proxy{Service: single(upstream(t, strategy, b.addr()))})
			c := dial(t, addr)
			_, err := c.Write([]byte("x"))
			require.NoError(t, err)
			time.Sleep(50 * time.Millisecond)
			require.NoError(t, c.SetLinger(0))
			require.NoError(t, c.Close())
			select {
			case err := <-ended:
				assert.True(t, errors.Is(err, syscall.ECONNRESET), "backend should see the reset, got %v", err)
			case <-time.After(time.Second):
				t.Fatal("backend connection still open 1s after the client's reset")
			}
		})
		t.Run(strategy+"/reset after FIN keeps data", func(t *testing.T) {
			// The backend sends 64 KiB and FIN, then resets: the client must
			// still read every byte, then EOF.
			b := startBackend(t, func(c *net.TCPConn) {
				_, _ = c.Write(make([]byte, 64<<10))
				_ = c.CloseWrite()
				time.Sleep(200 * time.Millisecond)
				_ = c.SetLinger(0)
			})
			u := upstream(t, strategy, b.addr())
			u.TerminationDelay = 2 * time.Second
			addr := startProxy(t, &Proxy{Service: single(u)})
			c := dial(t, addr)
			time.Sleep(400 * time.Millisecond) // read only after the reset
			n, err := io.Copy(io.Discard, c)
			require.NoError(t, err)
			assert.Equal(t, int64(64<<10), n)
		})
	}
}

func TestBackendRefused(t *testing.T) {
	// A port held with nothing listening. A listener's port noted and
	// closed could be handed to a proxy below as its own listening port,
	// and it would forward to itself until the test ran out of fds.
	refuser, err := blackhole.Refusing()
	require.NoError(t, err)
	defer refuser.Close()
	dead := refuser.Addr()

	ok := startBackend(t, func(c *net.TCPConn) { _, _ = c.Write([]byte("ok")) })

	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			t.Run("client closed promptly, proxy keeps serving", func(t *testing.T) {
				var logs syncBuffer
				p := &Proxy{Service: single(upstream(t, strategy, dead)), Logger: slog.New(slog.NewTextHandler(&logs, nil))}
				addr := startProxy(t, p)
				for range 3 {
					c := dial(t, addr)
					start := time.Now()
					err := readEnd(c, 2*time.Second)
					assert.Less(t, time.Since(start), time.Second)
					assert.False(t, errors.Is(err, os.ErrDeadlineExceeded), "client left hanging: %v", err)
				}
				require.Eventually(t, func() bool { return strings.Count(logs.String(), "backend unavailable") == 3 }, 2*time.Second, 10*time.Millisecond, logs.String())
				assert.Contains(t, logs.String(), "connection refused")
				require.Eventually(t, func() bool { return p.ActiveConns() == 0 }, 2*time.Second, 10*time.Millisecond)
			})
			t.Run("try next server", func(t *testing.T) {
				a, b := upstream(t, strategy, dead), upstream(t, strategy, ok.addr())
				a.TryNextServer, b.TryNextServer = true, true
				svc := lb.New([]lb.Weighted[*Upstream]{{Item: a, Weight: 1}, {Item: b, Weight: 1}}, false)
				addr := startProxy(t, &Proxy{Service: svc})
				for range 4 { // every other pick is the dead server
					c := dial(t, addr)
					data, err := io.ReadAll(c)
					require.NoError(t, err)
					assert.Equal(t, "ok", string(data))
				}
			})
		})
	}
}

// A backend that never answers (its accept queue is full, its SYNs are
// dropped) is given up after the upstream's dial timeout; with
// TryNextServer the next server serves the client.
func TestDialTimeout(t *testing.T) {
	bh, err := blackhole.Listen()
	require.NoError(t, err)
	defer bh.Close()
	ok := startBackend(t, func(c *net.TCPConn) { _, _ = c.Write([]byte("ok")) })
	const timeout = 200 * time.Millisecond
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			t.Run("alone: the client is closed", func(t *testing.T) {
				u := upstream(t, strategy, bh.Addr())
				u.DialTimeout = timeout
				var logs syncBuffer
				p := &Proxy{Service: single(u), Logger: slog.New(slog.NewTextHandler(&logs, nil))}
				c := dial(t, startProxy(t, p))
				start := time.Now()
				assert.NotErrorIs(t, readEnd(c, 3*time.Second), os.ErrDeadlineExceeded, "client left hanging")
				took := time.Since(start)
				assert.GreaterOrEqual(t, took, timeout-10*time.Millisecond, "gave up before the dial timeout")
				assert.Less(t, took, 2*time.Second)
				require.Eventually(t, func() bool { return strings.Contains(logs.String(), "backend unavailable") }, 2*time.Second, 10*time.Millisecond)
				assert.Contains(t, logs.String(), "timeout")
			})
			t.Run("try next server", func(t *testing.T) {
				a, b := upstream(t, strategy, bh.Addr()), upstream(t, strategy, ok.addr())
				a.DialTimeout, a.TryNextServer, b.TryNextServer = timeout, true, true
				svc := lb.New([]lb.Weighted[*Upstream]{{Item: a, Weight: 1}, {Item: b, Weight: 1}}, false)
				addr := startProxy(t, &Proxy{Service: svc})
				c := dial(t, addr) // the first pick is the black hole
				require.NoError(t, c.SetReadDeadline(time.Now().Add(3*time.Second)))
				data, err := io.ReadAll(c)
				require.NoError(t, err)
				assert.Equal(t, "ok", string(data))
			})
		})
	}
}

func TestTerminationDelayCountsIdleTime(t *testing.T) {
	const delay = 300 * time.Millisecond
	for _, strategy := range strategies {
		t.Run(strategy+"/idle backend is cut", func(t *testing.T) {
			ctx := t.Context()
			b := startBackend(t, func(c *net.TCPConn) {
				_, _ = io.Copy(io.Discard, c) // the client's FIN
				<-ctx.Done()                  // then stay silent, never closing
			})
			u := upstream(t, strategy, b.addr())
			u.TerminationDelay = delay
			addr := startProxy(t, &Proxy{Service: single(u)})
			c := dial(t, addr)
			require.NoError(t, c.CloseWrite())
			start := time.Now()
			err := readEnd(c, 5*time.Second)
			took := time.Since(start)
			assert.ErrorIs(t, err, io.EOF)
			assert.GreaterOrEqual(t, took, delay)
			assert.Less(t, took, delay+time.Second)
		})
		t.Run(strategy+"/active backend is not cut", func(t *testing.T) {
			// The backend keeps writing every delay/3 for 4 delays after the
			// client's FIN: traefik's fixed deadline would cut it.
			b := startBackend(t, func(c *net.TCPConn) {
				for range 12 {
					time.Sleep(delay / 3)
					if _, err := c.Write([]byte("tick")); err != nil {
						return
					}
				}
			})
			u := upstream(t, strategy, b.addr())
			u.TerminationDelay = delay
			addr := startProxy(t, &Proxy{Service: single(u)})
			c := dial(t, addr)
			require.NoError(t, c.CloseWrite())
			data, err := io.ReadAll(c)
			require.NoError(t, err)
			assert.Equal(t, 12*4, len(data))
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	for _, strategy := range strategies {
		t.Run(strategy+"/no traffic", func(t *testing.T) {
			b := startBackend(t, func(c *net.TCPConn) { _ = readEnd(c, 5*time.Second) })
			addr := startProxy(t, &Proxy{Service: single(upstream(t, strategy, b.addr())), IdleTimeout: idle})
			// The proxy's idle clock starts at accept, which can come before
			// dial returns here: measure from before the dial.
			start := time.Now()
			c := dial(t, addr)
			err := readEnd(c, 5*time.Second)
			took := time.Since(start)
			assert.ErrorIs(t, err, io.EOF)
			assert.GreaterOrEqual(t, took, idle)
			assert.Less(t, took, idle+time.Second)
		})
		t.Run(strategy+"/traffic keeps it open", func(t *testing.T) {
			b := startBackend(t, func(c *net.TCPConn) { _, _ = io.Copy(c, c) })
			addr := startProxy(t, &Proxy{Service: single(upstream(t, strategy, b.addr())), IdleTimeout: idle})
			c := dial(t, addr)
			buf := make([]byte, 4)
			for range 9 { // 3 timeouts' worth
				time.Sleep(idle / 3)
				_, err := c.Write([]byte("ping"))
				require.NoError(t, err)
				_, err = io.ReadFull(c, buf)
				require.NoError(t, err)
			}
		})
	}
}

func TestManyConcurrentNoCrossTalk(t *testing.T) {
	const conns = 500
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			b := startBackend(t, func(c *net.TCPConn) {
				_, _ = io.Copy(c, c)
				_ = c.CloseWrite()
			})
			addr := startProxy(t, &Proxy{Service: single(upstream(t, strategy, b.addr()))})
			var wg sync.WaitGroup
			errs := make(chan error, conns)
			for i := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						errs <- err
						return
					}
					defer c.Close()
					sentc := make(chan [32]byte, 1)
					go func() {
						sum, _ := pattern(c, uint64(i), 16<<10)
						_ = c.(*net.TCPConn).CloseWrite()
						sentc <- sum
					}()
					_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
					n, got, err := drain(c)
					sent := <-sentc
					if err == nil && (n != 16<<10 || got != sent) {
						err = fmt.Errorf("conn %d: got %d bytes, checksum match %v", i, n, got == sent)
					}
					if err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func TestWeightedProportions(t *testing.T) {
	counts := make([]int, 3)
	var mu sync.Mutex
	var ups []lb.Weighted[*Upstream]
	for i, w := range []int{1, 2, 5} {
		b := startBackend(t, func(c *net.TCPConn) {
			mu.Lock()
			counts[i]++
			mu.Unlock()
		})
		ups = append(ups, lb.Weighted[*Upstream]{Item: upstream(t, "splice", b.addr()), Weight: w})
	}
	addr := startProxy(t, &Proxy{Service: lb.New(ups, true)})
	for range 80 {
		c := dial(t, addr)
		_ = readEnd(c, 2*time.Second)
		_ = c.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []int{10, 20, 50}, counts)
}

func TestProxyProtocolSent(t *testing.T) {
	for _, strategy := range strategies {
		for _, version := range []int{1, 2} {
			for _, clientSends := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/v%d/client sends %v", strategy, version, clientSends), func(t *testing.T) {
					proxyProtocolSent(t, strategy, version, clientSends)
				})
			}
		}
	}
}

// proxyProtocolSent checks the header a backend receives, and the payload
// after it.
// ppSeen is what a PROXY-protocol backend saw of its first connection.
type ppSeen struct {
	remote, local net.Addr
	payload       string
}

// ppBackend is a backend that reads a PROXY header and then what read
// takes from its first connection.
func ppBackend(t *testing.T, read func(net.Conn) string) (net.Listener, <-chan ppSeen) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	pln := &proxyproto.Listener{Listener: ln}
	t.Cleanup(func() { _ = pln.Close() })
	got := make(chan ppSeen, 1)
	go func() {
		c, err := pln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		payload := read(c)
		got <- ppSeen{c.RemoteAddr(), c.LocalAddr(), payload} // RemoteAddr parses the header, if read did not
	}()
	return ln, got
}

func proxyProtocolSent(t *testing.T, strategy string, version int, clientSends bool) {
	ln, got := ppBackend(t, func(c net.Conn) string {
		if !clientSends {
			return ""
		}
		buf := make([]byte, 16)
		n, _ := c.Read(buf) // parses the header first
		return string(buf[:n])
	})
	var err error
	u := upstream(t, strategy, ln.Addr().String())
	u.ProxyProtocol = version
	addr := startProxy(t, &Proxy{Service: single(u)})
	c := dial(t, addr)
	if clientSends {
		_, err = c.Write([]byte("payload"))
		require.NoError(t, err)
	}
	s := <-got
	assert.Equal(t, c.LocalAddr().String(), s.remote.String(), "source is the real client")
	assert.Equal(t, addr, s.local.String(), "destination is the entrypoint")
	if clientSends {
		assert.Equal(t, "payload", s.payload)
	}
}

func TestAcceptProxyHeader(t *testing.T) {
	loop := netip.MustParsePrefix("127.0.0.0/8")
	other := netip.MustParsePrefix("10.0.0.0/8")
	header := func(v byte) []byte {
		h := proxyproto.HeaderProxyFromAddrs(v,
			&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 123},
			&net.TCPAddr{IP: net.ParseIP("192.0.2.2"), Port: 5678})
		b, err := h.Format()
		require.NoError(t, err)
		return b
	}
	// raw2 is a v2 PROXY-command header of family fam around body.
	raw2 := func(fam byte, body []byte) []byte {
		b := append(append([]byte(nil), proxyproto.SIGV2...), 0x21, fam, byte(len(body)>>8), byte(len(body)))
		return append(b, body...)
	}
	inet4 := []byte{192, 0, 2, 1, 192, 0, 2, 2, 0, 123, 0x16, 0x2e}
	split := func(b []byte, n int) [][]byte {
		var out [][]byte
		for len(b) > n {
			out, b = append(out, b[:n]), b[n:]
		}
		return append(out, b)
	}
	one := func(b []byte) [][]byte { return [][]byte{b} }
	const peer = "peer" // the client's own address
	tests := []struct {
		name       string
		trusted    netip.Prefix
		send       [][]byte // written 20 ms apart
		wantRemote string   // "" refused
	}{
		{"v1 trusted", loop, one(append(header(1), "payload"...)), "192.0.2.1:123"},
		{"v2 trusted", loop, one(append(header(2), "payload"...)), "192.0.2.1:123"},
		{"v1 split over writes", loop, append(split(header(1), 10), []byte("payload")), "192.0.2.1:123"},
		{"v2 split over writes", loop, append(split(header(2), 7), []byte("payload")), "192.0.2.1:123"},
		{"v2 PROXY with family UNSPEC uses the real address", loop, one(append(raw2(0x00, nil), "payload"...)), peer},
		{"v2 AF_UNIX uses the real address", loop, one(append(raw2(0x31, make([]byte, 216)), "payload"...)), peer},
		{"v2 header of 65535 bytes", loop, one(append(raw2(0x11, append(inet4, append([]byte{0xE0, 0xFF, 0xF0}, make([]byte, 0xFFF0)...)...)), "payload"...)), "192.0.2.1:123"},
		{"TLV overrunning the header refused", loop, one(append(raw2(0x11, append(inet4, 0xE0, 0, 10, 1, 2, 3)), "payload"...)), ""},
		{"stray byte after the last TLV refused", loop, one(append(raw2(0x11, append(inet4, 0x04, 0, 1, 0, 0xE0)), "payload"...)), ""},
		{"v1 without CRLF in 107 bytes refused", loop, one([]byte("PROXY TCP4 192.0.2.1 192.0.2.2 123 5678" + strings.Repeat(" ", 100) + "payload")), ""},
		{"untrusted client refused", other, one(append(header(2), "payload"...)), ""},
		{"missing header refused", loop, one([]byte("GET / HTTP/1.0\r\n\r\n")), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, got := ppBackend(t, func(c net.Conn) string {
				data, _ := io.ReadAll(c)
				return string(data)
			})
			var err error
			u := upstream(t, "splice", ln.Addr().String())
			u.ProxyProtocol = 2
			addr := startProxy(t, &Proxy{Service: single(u), AcceptProxy: &AcceptProxy{Trusted: []netip.Prefix{tt.trusted}, HeaderTimeout: time.Second}})
			c := dial(t, addr)
			for i, b := range tt.send {
				if i > 0 {
					time.Sleep(20 * time.Millisecond)
				}
				if _, err = c.Write(b); err != nil {
					break
				}
			}
			if tt.wantRemote == "" {
				assert.NotErrorIs(t, readEnd(c, 2*time.Second), os.ErrDeadlineExceeded, "refused client closed")
				select {
				case s := <-got:
					t.Fatalf("backend got a connection: %+v", s)
				case <-time.After(300 * time.Millisecond):
				}
				return
			}
			require.NoError(t, err)
			require.NoError(t, c.CloseWrite())
			var s ppSeen
			select {
			case s = <-got:
			case <-time.After(3 * time.Second):
				t.Fatal("backend got nothing within 3 s")
			}
			want := tt.wantRemote
			if want == peer {
				want = c.LocalAddr().String()
			}
			assert.Equal(t, want, s.remote.String(), "re-sent header carries the original client")
			assert.Equal(t, "payload", s.payload)
		})
	}
	t.Run("stalled header times out", func(t *testing.T) {
		b := startBackend(t, func(c *net.TCPConn) { t.Error("backend reached") })
		addr := startProxy(t, &Proxy{Service: single(upstream(t, "splice", b.addr())),
			AcceptProxy: &AcceptProxy{Trusted: []netip.Prefix{loop}, HeaderTimeout: 300 * time.Millisecond}})
		c := dial(t, addr)
		_, err := c.Write([]byte("PROXY TCP4 1.2."))
		require.NoError(t, err)
		start := time.Now()
		assert.NotErrorIs(t, readEnd(c, 3*time.Second), os.ErrDeadlineExceeded)
		assert.Less(t, time.Since(start), 2*time.Second)
	})
}

func TestGracefulShutdown(t *testing.T) {
	b := startBackend(t, func(c *net.TCPConn) { _, _ = io.Copy(c, c) })
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) { gracefulShutdown(t, strategy, b.addr()) })
	}
}

func gracefulShutdown(t *testing.T, strategy, backendAddr string) {
	newProxy := func() (*Proxy, string, chan error) {
		p := &Proxy{Service: single(upstream(t, strategy, backendAddr)), Logger: slog.New(slog.DiscardHandler)}
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- p.Serve(ln) }()
		return p, ln.Addr().String(), done
	}
	echo := func(c net.Conn, s string) error {
		if _, err := c.Write([]byte(s)); err != nil {
			return err
		}
		buf := make([]byte, len(s))
		_, err := io.ReadFull(bufio.NewReader(c), buf)
		return err
	}

	t.Run("open connection drains", func(t *testing.T) {
		p, addr, served := newProxy()
		c := dial(t, addr)
		require.NoError(t, echo(c, "before"))
		shut := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			shut <- p.Shutdown(ctx)
		}()
		require.Eventually(t, func() bool { return p.isShutdown() }, time.Second, 5*time.Millisecond)
		_, err := net.DialTimeout("tcp", addr, time.Second)
		assert.Error(t, err, "new connections are refused")
		require.NoError(t, echo(c, "during"), "open connection still works")
		require.NoError(t, c.Close())
		select {
		case err := <-shut:
			assert.NoError(t, err)
		case <-time.After(3 * time.Second):
			t.Fatal("shutdown did not finish after the last connection closed")
		}
		assert.NoError(t, <-served)
	})
	t.Run("grace runs out", func(t *testing.T) {
		p, addr, served := newProxy()
		c := dial(t, addr)
		require.NoError(t, echo(c, "x"))
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		assert.ErrorIs(t, p.Shutdown(ctx), context.DeadlineExceeded)
		assert.NotErrorIs(t, readEnd(c, 2*time.Second), os.ErrDeadlineExceeded, "connection closed after grace")
		assert.NoError(t, <-served)
		assert.Equal(t, 0, p.ActiveConns())
	})
}

// TestChurnLeavesNoLeak opens and closes connections in sequence, each with
// one request and response, and checks that goroutines and fds return to
// their starting counts.
func TestChurnLeavesNoLeak(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			b := startBackend(t, func(c *net.TCPConn) { _, _ = io.Copy(c, c) })
			p := &Proxy{Service: single(upstream(t, strategy, b.addr()))}
			addr := startProxy(t, p)
			settle := func() (int, int) {
				// Go keeps splice pipes in a sync.Pool, released (and their
				// fds closed) by finalizers after two collections.
				// lazysplice keeps a bounded pool of empty pipes by design:
				// its fds are not counted.
				for range 3 {
					runtime.GC()
					time.Sleep(50 * time.Millisecond)
				}
				return runtime.NumGoroutine(), countFDs(t) - 2*copystrat.PooledPipes()
			}
			buf := make([]byte, 4)
			exchange := func(i int) {
				c, err := net.Dial("tcp", addr)
				require.NoError(t, err)
				_, err = c.Write([]byte("ping"))
				require.NoError(t, err)
				_, err = io.ReadFull(c, buf)
				require.NoError(t, err, "conn %d", i)
				require.NoError(t, c.Close())
			}
			// One connection before the baseline: the event loops make
			// their epoll and eventfd descriptors at their first
			// connection and keep them, by design.
			exchange(-1)
			require.Eventually(t, func() bool { return p.ActiveConns() == 0 }, 5*time.Second, 10*time.Millisecond)
			g0, fd0 := settle()
			for i := range n {
				exchange(i)
			}
			require.Eventually(t, func() bool { return p.ActiveConns() == 0 }, 5*time.Second, 10*time.Millisecond)
			g1, fd1 := settle()
			assert.Equal(t, g0, g1, "goroutines")
			assert.Equal(t, fd0, fd1, "open fds")
		})
	}
}

func countFDs(t *testing.T) int {
	n, err := fdlimit.Count("self", "")
	require.NoError(t, err)
	return n
}

// TestMaxConns: over the cap a new connection is closed at once and
// counted, and a slot freed by a closed connection serves the next one.
func TestMaxConns(t *testing.T) {
	b := startBackend(t, func(c *net.TCPConn) { _, _ = io.Copy(c, c) })
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) { maxConns(t, strategy, b.addr()) })
	}
}

func maxConns(t *testing.T, strategy, backendAddr string) {
	p := &Proxy{Service: single(upstream(t, strategy, backendAddr)), MaxConns: 2}
	addr := startProxy(t, p)
	roundTrip := func(c net.Conn) error {
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := io.ReadFull(c, make([]byte, 1))
		return err
	}
	held := []*net.TCPConn{dial(t, addr), dial(t, addr)}
	for _, c := range held {
		require.NoError(t, roundTrip(c))
	}
	over := dial(t, addr)
	start := time.Now()
	err := readEnd(over, 2*time.Second)
	assert.NotErrorIs(t, err, os.ErrDeadlineExceeded, "a connection over the cap was left open")
	assert.Less(t, time.Since(start), time.Second)
	assert.Equal(t, int64(1), p.Refused())
	assert.Equal(t, 2, p.ActiveConns())

	require.NoError(t, held[0].Close())
	require.Eventually(t, func() bool { return p.ActiveConns() == 1 }, 2*time.Second, 5*time.Millisecond)
	require.NoError(t, roundTrip(dial(t, addr)), "a freed slot serves a new connection")
	assert.Equal(t, int64(1), p.Refused())
}

// The zero Upstream passes a half-closed response on (its termination
// delay is the default); CloseAtOnce and NeverTerminate do what they say.
func TestTerminationDelayZeroValueIsTheDefault(t *testing.T) {
	tests := []struct {
		name  string
		delay time.Duration
		wait  time.Duration // the backend's pause after the client's FIN
		want  string
	}{
		{"zero value: the default", 0, DefaultTerminationDelay / 4, "reply"},
		{"close at once", CloseAtOnce, DefaultTerminationDelay / 4, ""},
		{"never", NeverTerminate, 3 * DefaultTerminationDelay, "reply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBackend(t, func(c *net.TCPConn) {
				_, _ = io.Copy(io.Discard, c) // until the client's FIN
				time.Sleep(tt.wait)
				_, _ = c.Write([]byte("reply"))
			})
			u := &Upstream{Address: b.addr(), TerminationDelay: tt.delay}
			addr := startProxy(t, &Proxy{Service: single(u)})
			c := dial(t, addr)
			_, err := c.Write([]byte("request"))
			require.NoError(t, err)
			require.NoError(t, c.CloseWrite())
			require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
			got, err := io.ReadAll(c)
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
		})
	}
}

// The per-connection log lines carry the connection's attributes, and
// nothing is formatted for a level that is off.
func TestConnectionLogLines(t *testing.T) {
	b := startBackend(t, func(c *net.TCPConn) { _, _ = io.Copy(c, c) })
	for _, strategy := range strategies {
		for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
			t.Run(strategy+"/"+level.String(), func(t *testing.T) {
				connectionLogLine(t, strategy, level, b.addr())
			})
		}
	}
}

// connectionLogLine checks the line one clean connection logs: everything
// at debug, nothing at info.
func connectionLogLine(t *testing.T, strategy string, level slog.Level, backendAddr string) {
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))
	up := upstream(t, strategy, backendAddr)
	addr := startProxy(t, &Proxy{Name: "web", Service: single(up), Logger: logger})
	c := dial(t, addr)
	_, err := c.Write([]byte("ping"))
	require.NoError(t, err)
	require.NoError(t, c.CloseWrite())
	_, _ = io.ReadAll(c)
	_ = c.Close()
	if level == slog.LevelInfo {
		time.Sleep(200 * time.Millisecond)
		assert.Empty(t, buf.String(), "a clean close logs nothing at info")
		return
	}
	require.Eventually(t, func() bool { return strings.Contains(buf.String(), "connection closed") }, 2*time.Second, 10*time.Millisecond)
	line := buf.String()
	for _, want := range []string{"entrypoint=web", "client=127.0.0.1:", "backend=" + up.Address, "bytes_up=4", "bytes_down=4", "strategy=" + up.Strategy.Name(), "end=done"} {
		assert.Contains(t, line, want)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.buf.String() }

// neither is a strategy of neither kind, as only code that builds an
// Upstream by hand can make (Register refuses one).
type neither struct{}

func (neither) Name() string     { return "neither" }
func (neither) DataPath() string { return copystrat.DataPathUserspace }

// A strategy of neither kind closes the connection and logs an error; the
// proxy keeps serving and nothing is left running.
func TestStrategyOfNeitherKindClosesTheConnection(t *testing.T) {
	be := startBackend(t, func(c *net.TCPConn) { _, _ = io.Copy(io.Discard, c) })
	var logs syncBuffer
	p := &Proxy{Service: single(&Upstream{Address: be.addr(), Strategy: neither{}}), Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	addr := startProxy(t, p)
	for range 2 {
		c := dial(t, addr)
		err := readEnd(c, 2*time.Second)
		assert.False(t, errors.Is(err, os.ErrDeadlineExceeded), "client left hanging: %v", err)
	}
	require.Eventually(t, func() bool { return p.ActiveConns() == 0 }, 2*time.Second, 10*time.Millisecond)
	assert.Contains(t, logs.String(), "strategy is neither a DirectionStrategy nor a PairStrategy")
}
