// Package load holds l4bench's load clients. Each runs for a bounded time
// (and a bounded count of operations) against one address and returns what
// it measured from the client's side:
//
//	res, err := load.Stream(ctx, load.StreamOptions{Addr: a, Streams: 1, Direction: load.Up, Duration: 3 * time.Second})
//
// Every client targets the address it is given; the runner checks that it
// is a loopback address before calling it.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Directions of a stream.
const (
	Up   = "up"   // client to backend (sink)
	Down = "down" // backend (source) to client
	Both = "both" // both at once (echo)
)

// MaxOps bounds every loop that counts operations, whatever the duration.
const MaxOps = 50_000_000

// StreamOptions configure Stream.
type StreamOptions struct {
	Addr      string
	Streams   int
	Direction string
	Duration  time.Duration
	// BufferSize is the client's read/write size (default 256 KiB).
	BufferSize int
}

// StreamResult is what a stream run moved.
type StreamResult struct {
	Bytes   int64 // payload bytes through the design (both directions for Both)
	Elapsed time.Duration
}

// Throughput is bytes per second.
func (r StreamResult) Throughput() float64 { return float64(r.Bytes) / r.Elapsed.Seconds() }

// Stream runs bulk transfers on parallel connections for the duration.
// Bytes count what the client wrote (Up), read (Down), or both (Both); the
// backend must be a sink, a source or an echo server accordingly.
func Stream(ctx context.Context, o StreamOptions) (StreamResult, error) {
	if o.Streams <= 0 {
		o.Streams = 1
	}
	if o.BufferSize <= 0 {
		o.BufferSize = 256 << 10
	}
	conns, err := dialAll(ctx, o.Addr, o.Streams)
	if err != nil {
		return StreamResult{}, err
	}
	defer closeAll(conns)
	var total atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) {
		if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) && !isTimeout(err) {
			errOnce.Do(func() { firstErr = err })
		}
	}
	start := time.Now()
	deadline := start.Add(o.Duration)
	for _, c := range conns {
		_ = c.SetDeadline(deadline)
		if o.Direction == Up || o.Direction == Both {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, o.BufferSize)
				for {
					n, err := c.Write(buf)
					total.Add(int64(n))
					if err != nil {
						fail(err)
						return
					}
				}
			}()
		}
		if o.Direction == Down || o.Direction == Both {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, o.BufferSize)
				for {
					n, err := c.Read(buf)
					total.Add(int64(n))
					if err != nil {
						if err == io.EOF {
							fail(errors.New("the backend closed the stream early"))
						}
						fail(err)
						return
					}
				}
			}()
		}
	}
	stop := context.AfterFunc(ctx, func() {
		for _, c := range conns {
			_ = c.SetDeadline(time.Unix(1, 0))
		}
	})
	defer stop()
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return StreamResult{}, err
	}
	if total.Load() == 0 && firstErr == nil {
		firstErr = errors.New("no byte moved")
	}
	return StreamResult{Bytes: total.Load(), Elapsed: elapsed}, firstErr
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dialAll opens n connections, or none: on error it closes what it opened.
func dialAll(ctx context.Context, addr string, n int) ([]*net.TCPConn, error) {
	conns := make([]*net.TCPConn, 0, n)
	for range n {
		c, err := dialTCP(ctx, addr)
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func closeAll(conns []*net.TCPConn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

func dialTCP(ctx context.Context, addr string) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// newHist records latencies in microseconds from 1 µs to 60 s with three
// significant digits.
func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000, 3) }

// Latency summarises a histogram in microseconds.
type Latency struct {
	Count                      int64
	P50, P99, P999, P9999, Max float64
}

func summarize(h *hdrhistogram.Histogram) Latency {
	return Latency{
		Count: h.TotalCount(),
		P50:   float64(h.ValueAtQuantile(50)),
		P99:   float64(h.ValueAtQuantile(99)),
		P999:  float64(h.ValueAtQuantile(99.9)),
		P9999: float64(h.ValueAtQuantile(99.99)),
		Max:   float64(h.Max()),
	}
}

// String is for logs.
func (l Latency) String() string {
	return fmt.Sprintf("n=%d p50=%.0fµs p99=%.0fµs p99.9=%.0fµs max=%.0fµs", l.Count, l.P50, l.P99, l.P999, l.Max)
}
