package tcp

import (
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkThroughput streams 1 MiB per op through one connection to a
// sink, for a bare two-goroutine io.Copy proxy (the floor any proxy is
// measured against) and for each strategy. Compare with benchstat; the
// numbers belong in reports, not in asserts.
func BenchmarkThroughput(b *testing.B) {
	designs := append([]string{"bare-iocopy"}, strategies...)
	for _, design := range designs {
		b.Run(design, func(b *testing.B) {
			var received atomic.Int64
			sink := startBenchSink(b, &received)
			var addr string
			if design == "bare-iocopy" {
				addr = startBareProxy(b, sink)
			} else {
				p := &Proxy{Service: single(mustUpstream(design, sink)), Logger: slog.New(slog.DiscardHandler)}
				addr = serveBench(b, p)
			}
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			chunk := make([]byte, 1<<20)
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			want := int64(b.N) * int64(len(chunk))
			for received.Load() < want {
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
		})
	}
}

func mustUpstream(strategy, addr string) *Upstream {
	u, err := newUpstream(strategy, addr)
	if err != nil {
		panic(err)
	}
	return u
}

func startBenchSink(b *testing.B, received *atomic.Int64) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 256<<10)
				for {
					n, err := c.Read(buf)
					received.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	b.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// startBareProxy is the simplest splicing proxy: accept, dial, two
// io.Copy goroutines.
func startBareProxy(b *testing.B, backend string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", backend)
			if err != nil {
				_ = c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(u, c); _ = u.(*net.TCPConn).CloseWrite() }()
			go func() { defer wg.Done(); _, _ = io.Copy(c, u); _ = c.(*net.TCPConn).CloseWrite() }()
		}
	}()
	b.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func serveBench(b *testing.B, p *Proxy) string {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Serve(ln) }()
	b.Cleanup(func() {
		_ = p.Shutdown(closedCtx())
		<-done
	})
	return ln.Addr().String()
}
