// Package load holds l4bench's load clients. Each runs for a bounded time
// (and a bounded count of operations) against one address and returns what
// it measured from the client's side:
//
//	res, err := load.StreamOptions{Options: load.Options{Addr: a, Duration: 3 * time.Second}, Streams: 1, Direction: load.Up}.Run(ctx)
//
// Each client's options embed the shared Options and are a Runner with a
// typed result (fortio's Runnable); the free functions Stream, RR, CRR,
// UDP and UDPCapacity are the same clients.
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
	Options
	Streams   int
	Direction string
	// Warmup is the start of the run that is not counted (default: none).
	// It is part of Duration.
	Warmup time.Duration
	// Received counts bytes at the receiving end of an Up stream (the
	// sink's counter); required for Up. Bytes a client has written may
	// still sit in socket buffers, so they are not counted.
	Received func() int64
	// BufferSize is the client's read/write size (default 256 KiB).
	BufferSize int
}

// StreamResult is what a stream run moved, counted where the bytes
// arrived: at the sink (Up), at the client (Down), or twice what came
// back to the client (Both: each byte crossed the design both ways).
type StreamResult struct {
	Bytes   int64         // after the warm-up
	Elapsed time.Duration // after the warm-up
	// TotalBytes is what arrived over the whole run, warm-up included.
	TotalBytes int64
}

// Throughput is bytes per second after the warm-up.
func (r StreamResult) Throughput() float64 { return float64(r.Bytes) / r.Elapsed.Seconds() }

// Stream runs bulk transfers on parallel connections for the duration;
// the backend must be a sink, a source or an echo server for Up, Down or
// Both.
func Stream(ctx context.Context, o StreamOptions) (StreamResult, error) {
	if o.Streams <= 0 {
		o.Streams = 1
	}
	if o.BufferSize <= 0 {
		o.BufferSize = 256 << 10
	}
	if o.Warmup < 0 || o.Warmup >= o.Duration {
		return StreamResult{}, fmt.Errorf("stream warm-up %v must be shorter than the duration %v", o.Warmup, o.Duration)
	}
	var read atomic.Int64 // bytes the client received
	arrived := func() int64 {
		switch o.Direction {
		case Up:
			return o.Received()
		case Both:
			return 2 * read.Load()
		default:
			return read.Load()
		}
	}
	if o.Direction == Up && o.Received == nil {
		return StreamResult{}, errors.New("an up stream needs the receiving end's counter (StreamOptions.Received)")
	}
	conns, err := dialAll(ctx, o.Addr, o.Streams)
	if err != nil {
		return StreamResult{}, err
	}
	defer closeAll(conns)
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) {
		if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) && !isTimeout(err) {
			errOnce.Do(func() { firstErr = err })
		}
	}
	start := time.Now()
	at0 := arrived()
	deadline := start.Add(o.Duration)
	for _, c := range conns {
		_ = c.SetDeadline(deadline)
		if o.Direction == Up || o.Direction == Both {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, o.BufferSize)
				for {
					if _, err := c.Write(buf); err != nil {
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
					read.Add(int64(n))
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
	// The counting window: from the end of the warm-up to the deadline.
	var warmAt time.Time
	var warmBytes int64
	marks := make(chan struct{})
	go func() {
		defer close(marks)
		t := time.NewTimer(time.Until(start.Add(o.Warmup)))
		defer t.Stop()
		select {
		case <-t.C:
			warmAt, warmBytes = time.Now(), arrived()
		case <-ctx.Done():
		}
	}()
	wg.Wait()
	endAt, endBytes := time.Now(), arrived()
	<-marks
	if err := ctx.Err(); err != nil {
		return StreamResult{}, err
	}
	res := StreamResult{Bytes: endBytes - warmBytes, Elapsed: endAt.Sub(warmAt), TotalBytes: endBytes - at0}
	if res.TotalBytes == 0 && firstErr == nil {
		firstErr = errors.New("no byte moved")
	}
	return res, firstErr
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
