package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// CapacityOptions configure UDPCapacity. The backend must echo.
type CapacityOptions struct {
	// Options.Duration, when set, bounds the whole search: a search not
	// done by then fails, naming it. Zero leaves it to its own steps.
	Options
	Clients int // sockets, each its own session (default 4)
	Size    int // datagram size (default 64, at least 16)
	// Step is how long each offered rate is held (default 250 ms).
	Step time.Duration
	// MaxLoss is the loss a rate may have and still count as forwarded
	// (default 0.001).
	MaxLoss float64
	// From is the first rate tried (default 10000/s); the search doubles
	// it until a rate is lost, then bisects.
	From float64
	// Ceiling bounds the search (default 4,000,000/s).
	Ceiling float64
	// Bisections after the first lost rate (default 3).
	Bisections int
}

// CapacityStep is one offered rate of the search.
type CapacityStep struct {
	Offered  float64 // the rate asked for, datagrams/s
	Achieved float64 // what the client managed to send, datagrams/s
	Sent     int64
	Received int64
	Loss     float64
}

// CapacityResult is the outcome of the search.
type CapacityResult struct {
	// PPS is the highest achieved send rate with loss ≤ MaxLoss, or 0 if
	// even the first rate lost more.
	PPS   float64
	Steps []CapacityStep
	// ClientBound is set when the client could not send at the rate it
	// asked for: the capacity found is then the harness's, not the
	// design's.
	ClientBound bool
}

// UDPCapacity finds the highest rate at which datagrams come back with
// loss ≤ MaxLoss, by a bounded search: doubling from From while no rate is
// lost (at most log2(Ceiling/From)+1 steps), or halving down to From/8 if
// From already is, then Bisections more, each step held for Step. Sends go out in
// batches, each what the schedule owes since the last one (time.Sleep
// wakes every 0.2 to 1 ms here): the count matters here, not the timing of
// each datagram, so the bursts are part of what is measured.
func UDPCapacity(ctx context.Context, o CapacityOptions) (CapacityResult, error) {
	if o.Clients <= 0 {
		o.Clients = 4
	}
	o.Size = max(o.Size, minDatagram)
	if o.Step <= 0 {
		o.Step = 250 * time.Millisecond
	}
	if o.MaxLoss <= 0 {
		o.MaxLoss = 0.001
	}
	if o.From <= 0 {
		o.From = 10000
	}
	if o.Ceiling <= 0 {
		o.Ceiling = 4_000_000
	}
	if o.Bisections <= 0 {
		o.Bisections = 3
	}
	raddr, err := net.ResolveUDPAddr("udp", o.Addr)
	if err != nil {
		return CapacityResult{}, err
	}
	var res CapacityResult
	began := time.Now()
	try := func(rate float64) (CapacityStep, error) {
		if o.Duration > 0 && time.Since(began) >= o.Duration {
			return CapacityStep{}, fmt.Errorf("udp capacity search: not done within its %v (%d steps so far)", o.Duration, len(res.Steps))
		}
		st, err := capacityStep(ctx, raddr, o, rate)
		if err == nil {
			res.Steps = append(res.Steps, st)
			if st.Achieved < 0.95*st.Offered {
				res.ClientBound = true
			}
		}
		return st, err
	}
	lost := func(st CapacityStep) bool { return st.Loss > o.MaxLoss }
	good, bad := 0.0, 0.0
	first, err := try(o.From)
	if err != nil {
		return res, err
	}
	if lost(first) {
		// A first rate that is already lost (a stall of a few tens of ms
		// at 10000/s is enough) is halved, down to From/8, so the result
		// is a rate the design forwarded, not a bare zero.
		bad = o.From
		for rate := o.From / 2; rate >= o.From/8; rate /= 2 {
			st, err := try(rate)
			if err != nil {
				return res, err
			}
			if !lost(st) {
				good, res.PPS = rate, st.Achieved
				break
			}
			bad = rate
		}
		if good == 0 {
			return res, nil
		}
	} else {
		good, res.PPS = o.From, first.Achieved
		for rate := o.From * 2; rate <= o.Ceiling; rate *= 2 {
			if res.ClientBound {
				return res, nil
			}
			st, err := try(rate)
			if err != nil {
				return res, err
			}
			if lost(st) {
				bad = rate
				break
			}
			good, res.PPS = rate, max(res.PPS, st.Achieved)
		}
		if bad == 0 {
			return res, nil
		}
	}
	for range o.Bisections {
		rate := (good + bad) / 2
		st, err := try(rate)
		if err != nil {
			return res, err
		}
		if st.Loss > o.MaxLoss {
			bad = rate
		} else {
			good = rate
			res.PPS = max(res.PPS, st.Achieved)
		}
	}
	return res, nil
}

// capacityStep offers one rate for o.Step on fresh sockets (fresh
// sessions in the design) and counts the echoes that come back within
// 150 ms of the last send.
func capacityStep(ctx context.Context, raddr *net.UDPAddr, o CapacityOptions, rate float64) (CapacityStep, error) {
	conns, err := dialUDPClients(raddr, o.Clients)
	if err != nil {
		return CapacityStep{}, err
	}
	defer closeUDP(conns)
	lingerEnd := time.Now().Add(o.Step + 150*time.Millisecond)
	for _, c := range conns {
		_ = c.SetReadDeadline(lingerEnd)
	}
	stop := context.AfterFunc(ctx, func() {
		for _, c := range conns {
			_ = c.SetReadDeadline(time.Unix(1, 0))
		}
	})
	defer stop()
	var received atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 65536)
			for {
				if _, err := c.Read(buf); err != nil {
					if isTimeout(err) || errors.Is(err, net.ErrClosed) {
						return
					}
					continue // an ICMP error: that datagram is lost
				}
				received.Add(1)
			}
		}()
	}
	msg := make([]byte, o.Size)
	var sent int64
	start := time.Now()
	end := start.Add(o.Step)
	for i := 0; ctx.Err() == nil && i < MaxOps; i++ {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		due := int64(rate * now.Sub(start).Seconds())
		for ; sent < due; sent++ {
			_, _ = conns[sent%int64(len(conns))].Write(msg) // a failed send is lost
		}
		time.Sleep(200 * time.Microsecond)
	}
	elapsed := time.Since(start)
	// Once every echo is in, the receivers need not wait out the 150 ms.
	for received.Load() < sent && time.Now().Before(lingerEnd) && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond)
	}
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Unix(1, 0))
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return CapacityStep{}, err
	}
	st := CapacityStep{Offered: rate, Achieved: float64(sent) / elapsed.Seconds(), Sent: sent, Received: received.Load()}
	if sent > 0 {
		st.Loss = max(float64(sent-st.Received)/float64(sent), 0)
	}
	return st, nil
}
