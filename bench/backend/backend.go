// Package backend provides the servers that stand behind a design under
// test: echo, sink (discard) and source (send N bytes), over TCP and UDP.
//
//	b, err := backend.Start("echo", "127.0.0.1:0", false, 0)
//	defer b.Close()
//	addr := b.Addr()
package backend

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/l4bench/l4bench/bench/place"
	"github.com/l4bench/l4bench/internal/payload"
)

// Kinds of backend.
const (
	Echo   = "echo"   // returns every byte (datagram) it receives
	Sink   = "sink"   // reads and discards
	Source = "source" // writes N bytes (or until the client closes), then FIN
)

// Kinds lists the backend kinds.
var Kinds = []string{Echo, Sink, Source}

// Backend is a running server. Close stops it and waits for its goroutines.
type Backend struct {
	kind   string
	ln     net.Listener
	pc     net.PacketConn
	size   int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool

	accepted atomic.Int64
	received atomic.Int64
}

// Start runs a backend of kind on addr. For source, size is the bytes sent
// per connection (0: until the client closes). UDP supports echo and sink.
func Start(kind, addr string, udp bool, size int64) (*Backend, error) {
	return StartIn(place.Host(), kind, addr, udp, size)
}

// StartIn is Start with the backend's socket opened in a place (a network
// namespace the run made); it serves from this process all the same.
func StartIn(pl place.Place, kind, addr string, udp bool, size int64) (*Backend, error) {
	b := &Backend{kind: kind, size: size, conns: map[net.Conn]struct{}{}}
	switch kind {
	case Echo, Sink, Source:
	default:
		return nil, fmt.Errorf("unknown backend %q (choices: echo, sink, source)", kind)
	}
	if udp {
		if kind == Source {
			return nil, errors.New("a source backend is TCP only (choices for UDP: echo, sink)")
		}
		var pc net.PacketConn
		err := pl.Do(func() (err error) {
			pc, err = net.ListenPacket("udp", addr)
			return err
		})
		if err != nil {
			return nil, err
		}
		b.pc = pc
		b.wg.Add(1)
		go b.serveUDP()
		return b, nil
	}
	var ln net.Listener
	err := pl.Do(func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	b.ln = ln
	b.wg.Add(1)
	go b.acceptLoop()
	return b, nil
}

// Addr is the bound address.
func (b *Backend) Addr() string {
	if b.pc != nil {
		return b.pc.LocalAddr().String()
	}
	return b.ln.Addr().String()
}

// Accepted counts TCP connections accepted (UDP: datagrams received).
func (b *Backend) Accepted() int64 { return b.accepted.Load() }

// Received counts payload bytes received.
func (b *Backend) Received() int64 { return b.received.Load() }

// Close stops the backend, closes its connections and waits.
func (b *Backend) Close() error {
	b.mu.Lock()
	b.closed = true
	for c := range b.conns {
		_ = c.Close()
	}
	b.mu.Unlock()
	var err error
	if b.ln != nil {
		err = b.ln.Close()
	}
	if b.pc != nil {
		err = b.pc.Close()
	}
	b.wg.Wait()
	return err
}

func (b *Backend) acceptLoop() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			_ = c.Close()
			return
		}
		b.conns[c] = struct{}{}
		b.mu.Unlock()
		b.accepted.Add(1)
		b.wg.Add(1)
		go b.serveConn(c)
	}
}

type countingWriter struct{ n *atomic.Int64 }

func (w countingWriter) Write(p []byte) (int, error) { w.n.Add(int64(len(p))); return len(p), nil }

func (b *Backend) serveConn(c net.Conn) {
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		delete(b.conns, c)
		b.mu.Unlock()
		_ = c.Close()
	}()
	tc := c.(*net.TCPConn)
	switch b.kind {
	case Echo:
		// io.Copy between one conn and itself splices through a pipe: the
		// backend costs as little CPU as it can.
		n, _ := io.Copy(tc, tc)
		b.received.Add(n)
		_ = tc.CloseWrite()
	case Sink:
		_, _ = io.Copy(countingWriter{&b.received}, tc)
	case Source:
		done := make(chan struct{})
		go func() { // drain whatever the client sends, until its FIN
			defer close(done)
			_, _ = io.Copy(countingWriter{&b.received}, tc)
		}()
		if b.size > 0 {
			_, _ = io.Copy(tc, io.LimitReader(payload.Zeros{}, b.size))
		} else {
			_, _ = io.Copy(tc, payload.Zeros{})
		}
		_ = tc.CloseWrite()
		<-done
	}
}

func (b *Backend) serveUDP() {
	defer b.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, addr, err := b.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		b.accepted.Add(1)
		b.received.Add(int64(n))
		if b.kind == Echo {
			_, _ = b.pc.WriteTo(buf[:n], addr)
		}
	}
}
