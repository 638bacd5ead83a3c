package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// CRROptions configure CRR. The backend must echo.
type CRROptions struct {
	Options
	Workers     int // parallel connect loops (default 1)
	MessageSize int // default 64
}

// CRRResult counts connect-request-close cycles.
type CRRResult struct {
	Conns   int64
	Elapsed time.Duration
	Connect Latency // time to establish the TCP connection
	Cycle   Latency // connect + request + response + close
	// The histograms behind Connect and Cycle (µs), to merge over rounds.
	ConnectHist, CycleHist *histT
}

// Rate is connections per second.
func (r CRRResult) Rate() float64 { return float64(r.Conns) / r.Elapsed.Seconds() }

// CRR opens a connection, exchanges one message and closes, in a loop.
func CRR(ctx context.Context, o CRROptions) (CRRResult, error) {
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.MessageSize <= 0 {
		o.MessageSize = defaultMessageSize
	}
	start := time.Now()
	end := start.Add(o.Duration)
	connectH, cycleH := make([]*histT, o.Workers), make([]*histT, o.Workers)
	errs := make([]error, o.Workers)
	var wg sync.WaitGroup
	for w := range o.Workers {
		connectH[w], cycleH[w] = newHist(), newHist()
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, o.MessageSize)
			buf := make([]byte, o.MessageSize)
			d := net.Dialer{Timeout: 5 * time.Second}
			for ops := 0; ops < MaxOps && ctx.Err() == nil && time.Now().Before(end); ops++ {
				t0 := time.Now()
				c, err := d.DialContext(ctx, "tcp", o.Addr)
				if err != nil {
					errs[w] = fmt.Errorf("crr connect: %w", err)
					return
				}
				t1 := time.Now()
				_ = c.SetDeadline(t1.Add(5 * time.Second))
				_, err = c.Write(msg)
				if err == nil {
					_, err = io.ReadFull(c, buf)
				}
				_ = c.Close()
				if err != nil {
					errs[w] = fmt.Errorf("crr exchange: %w", err)
					return
				}
				_ = connectH[w].RecordValue(max(t1.Sub(t0).Microseconds(), 1))
				_ = cycleH[w].RecordValue(max(time.Since(t0).Microseconds(), 1))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	ch, yh := newHist(), newHist()
	for w := range o.Workers {
		ch.Merge(connectH[w])
		yh.Merge(cycleH[w])
	}
	return CRRResult{Conns: ch.TotalCount(), Elapsed: elapsed, Connect: summarize(ch), Cycle: summarize(yh), ConnectHist: ch, CycleHist: yh}, errors.Join(errs...)
}
