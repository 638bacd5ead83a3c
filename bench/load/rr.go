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
	Options
	Conns       int
	MessageSize int // default 64 bytes
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
	// Lateness is how late the open loop's sends left after their
	// intended times (zero for the closed loop).
	Lateness Lateness
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
		o.MessageSize = defaultMessageSize
	}
	conns, err := dialAll(ctx, o.Addr, o.Conns)
	if err != nil {
		return RRResult{}, err
	}
	defer closeAll(conns)
	if o.Rate > 0 {
		return openLoop(ctx, conns, o)
	}
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
			errs[i] = closedLoop(ctx, c, o.MessageSize, end, hists[i])
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := mergeHists(hists)
	return RRResult{Requests: total.TotalCount(), Elapsed: elapsed, Latency: summarize(total), Hist: total}, errors.Join(errs...)
}

func mergeHists(hists []*hdrhistogram.Histogram) *hdrhistogram.Histogram {
	total := newHist()
	for _, h := range hists {
		total.Merge(h)
	}
	return total
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

// openLoop sends every request from one pacer, round robin over the
// connections at the total rate, and reads each connection's replies on a
// goroutine of its own.
func openLoop(ctx context.Context, conns []*net.TCPConn, o RROptions) (RRResult, error) {
	interval := time.Duration(float64(time.Second) / o.Rate)
	if interval <= 0 {
		return RRResult{}, fmt.Errorf("rate %.0f/s is too high", o.Rate)
	}
	hists := make([]*hdrhistogram.Histogram, len(conns))
	intended := make([]chan time.Time, len(conns))
	errs := make([]error, len(conns)+1)
	var wg sync.WaitGroup
	for i, c := range conns {
		hists[i] = newHist()
		intended[i] = make(chan time.Time, 1<<16)
		_ = c.SetDeadline(time.Now().Add(o.Duration + 2*time.Second))
		wg.Add(1)
		go func() { // reader: replies come back in order
			defer wg.Done()
			buf := make([]byte, o.MessageSize)
			for t := range intended[i] {
				if _, err := io.ReadFull(c, buf); err != nil {
					errs[i] = fmt.Errorf("rr read: %w", err)
					for range intended[i] {
					}
					return
				}
				_ = hists[i].RecordValue(max(time.Since(t).Microseconds(), 1))
			}
		}()
	}
	var start time.Time
	lateness := runPaced(ctx, func(p *pacer) {
		defer func() {
			for _, ch := range intended {
				close(ch)
			}
		}()
		start = p.start
		end := start.Add(o.Duration)
		msg := make([]byte, o.MessageSize)
		for i := 0; i < MaxOps; i++ {
			at := start.Add(time.Duration(i) * interval)
			if !at.Before(end) || !p.wait(at) {
				return
			}
			k := i % len(conns)
			if _, err := conns[k].Write(msg); err != nil {
				errs[len(conns)] = fmt.Errorf("rr write: %w", err)
				return
			}
			select {
			case intended[k] <- at:
			default:
				errs[len(conns)] = errors.New("rr: more than 65536 requests outstanding on one connection; lower the rate")
				return
			}
		}
	})
	wg.Wait()
	total := mergeHists(hists)
	return RRResult{Requests: total.TotalCount(), Elapsed: time.Since(start), Latency: summarize(total), Hist: total,
		Lateness: summarizeLateness(lateness)}, errors.Join(errs...)
}
