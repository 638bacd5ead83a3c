package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// RROptions configure RR. The backend must echo.
type RROptions struct {
	Addr        string
	Conns       int
	MessageSize int // default 64 bytes
	Duration    time.Duration
	// Rate is the total offered requests per second for the open loop;
	// zero runs a closed loop (each connection sends its next request when
	// the previous reply arrived).
	Rate float64
}

// RRResult is the outcome of a request/response run.
type RRResult struct {
	Requests int64
	Elapsed  time.Duration
	Latency  Latency
	Hist     *hdrhistogram.Histogram
}

// RPS is completed requests per second.
func (r RRResult) RPS() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// RR runs request/response exchanges of fixed-size messages. In the open
// loop every request has an intended send time on a fixed schedule, and
// its latency is measured from that time, not from when it was actually
// sent: a stall delays every request scheduled behind it and they all
// count, so coordinated omission is not hidden (wrk2's method).
func RR(ctx context.Context, o RROptions) (RRResult, error) {
	if o.Conns <= 0 {
		o.Conns = 1
	}
	if o.MessageSize <= 0 {
		o.MessageSize = 64
	}
	conns, err := dialAll(ctx, o.Addr, o.Conns)
	if err != nil {
		return RRResult{}, err
	}
	defer closeAll(conns)
	hists := make([]*hdrhistogram.Histogram, len(conns))
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(o.Duration)
	for i, c := range conns {
		hists[i] = newHist()
		_ = c.SetDeadline(end.Add(2 * time.Second))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if o.Rate > 0 {
				errs[i] = openLoop(ctx, c, o, o.Rate/float64(len(conns)), start, end, hists[i])
			} else {
				errs[i] = closedLoop(ctx, c, o.MessageSize, end, hists[i])
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := newHist()
	for _, h := range hists {
		total.Merge(h)
	}
	res := RRResult{Requests: total.TotalCount(), Elapsed: elapsed, Latency: summarize(total), Hist: total}
	return res, errors.Join(errs...)
}

func closedLoop(ctx context.Context, c *net.TCPConn, size int, end time.Time, h *hdrhistogram.Histogram) error {
	msg := make([]byte, size)
	buf := make([]byte, size)
	for ops := 0; ops < MaxOps && ctx.Err() == nil; ops++ {
		t0 := time.Now()
		if !t0.Before(end) {
			return nil
		}
		if _, err := c.Write(msg); err != nil {
			return fmt.Errorf("rr write: %w", err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return fmt.Errorf("rr read: %w", err)
		}
		_ = h.RecordValue(max(time.Since(t0).Microseconds(), 1))
	}
	return ctx.Err()
}

func openLoop(ctx context.Context, c *net.TCPConn, o RROptions, rate float64, start, end time.Time, h *hdrhistogram.Histogram) error {
	interval := time.Duration(float64(time.Second) / rate)
	if interval <= 0 {
		return fmt.Errorf("rate %.0f/s per connection is too high", rate)
	}
	intended := make(chan time.Time, 1<<16)
	readErr := make(chan error, 1)
	go func() { // reader: replies come back in order
		buf := make([]byte, o.MessageSize)
		for t := range intended {
			if _, err := io.ReadFull(c, buf); err != nil {
				readErr <- fmt.Errorf("rr read: %w", err)
				for range intended {
				}
				return
			}
			_ = h.RecordValue(max(time.Since(t).Microseconds(), 1))
		}
		readErr <- nil
	}()
	msg := make([]byte, o.MessageSize)
	var err error
	for i := 0; i < MaxOps && ctx.Err() == nil; i++ {
		at := start.Add(time.Duration(i) * interval)
		if !at.Before(end) {
			break
		}
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		if _, err = c.Write(msg); err != nil {
			err = fmt.Errorf("rr write: %w", err)
			break
		}
		select {
		case intended <- at:
		default:
			err = errors.New("rr: more than 65536 requests outstanding; lower the rate")
		}
		if err != nil {
			break
		}
	}
	close(intended)
	if rerr := <-readErr; err == nil {
		err = rerr
	}
	return err
}
