package load

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// UDPOptions configure UDP. The backend must echo.
type UDPOptions struct {
	Options
	Clients int     // sockets, each its own session (default 1)
	Rate    float64 // datagrams per second offered in total
	Size    int     // datagram size (default 64, at least 16)
}

// UDPResult counts datagrams.
type UDPResult struct {
	// Sent counts every datagram the schedule sent, those whose send
	// failed (SendErrors) included: they are lost.
	Sent, Received, SendErrors int64
	Elapsed                    time.Duration
	Latency                    Latency
	Hist                       *histT
	Lateness                   Lateness // of the sends after their intended times
}

// Loss is the fraction of datagrams sent that did not come back.
func (r UDPResult) Loss() float64 {
	if r.Sent == 0 {
		return 0
	}
	return float64(r.Sent-r.Received) / float64(r.Sent)
}

// PPS is echoed datagrams received per second.
func (r UDPResult) PPS() float64 { return float64(r.Received) / r.Elapsed.Seconds() }

// UDP offers datagrams at a fixed rate and counts the echoes. Each
// datagram carries its intended send time, so latency is measured from the
// schedule like RR's open loop. Replies still in flight 500 ms after the
// last send count as lost.
func UDP(ctx context.Context, o UDPOptions) (UDPResult, error) {
	if o.Clients <= 0 {
		o.Clients = 1
	}
	o.Size = max(o.Size, minDatagram)
	if o.Rate <= 0 {
		return UDPResult{}, errors.New("udp load needs a positive rate")
	}
	raddr, err := net.ResolveUDPAddr("udp", o.Addr)
	if err != nil {
		return UDPResult{}, err
	}
	// Every socket is made before any goroutine starts, so a failed dial
	// leaves nothing running; every goroutine is joined below.
	conns, err := dialUDPClients(raddr, o.Clients)
	if err != nil {
		return UDPResult{}, err
	}
	defer closeUDP(conns)
	var sent, received, sendErrors atomic.Int64
	hists := make([]*histT, o.Clients)
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / o.Rate)
	var sendErr error
	stop := context.AfterFunc(ctx, func() { // a cancelled run ends its receivers at once
		for _, c := range conns {
			_ = c.SetReadDeadline(time.Unix(1, 0))
		}
	})
	defer stop()
	// Replies still in flight 500 ms after the last send count as lost.
	linger := o.Duration + 100*time.Microsecond + 500*time.Millisecond
	lingerEnd := time.Now().Add(linger)
	for _, c := range conns {
		if ctx.Err() == nil {
			_ = c.SetReadDeadline(time.Now().Add(linger))
		}
	}
	for i, c := range conns {
		hists[i] = newHist()
		wg.Add(1)
		go func() { // receiver
			defer wg.Done()
			buf := make([]byte, 65536)
			for {
				n, err := c.Read(buf)
				if err != nil {
					if isTimeout(err) || errors.Is(err, net.ErrClosed) {
						return
					}
					// An ICMP error (ECONNREFUSED while the design had no
					// session yet) is reported on the next read: the
					// datagram it belongs to is lost, later ones may not be.
					continue
				}
				if n >= 8 {
					at := time.Unix(0, int64(binary.BigEndian.Uint64(buf)))
					_ = hists[i].RecordValue(max(time.Since(at).Microseconds(), 1))
				}
				received.Add(1)
			}
		}()
	}
	// One pacer sends every datagram, round robin over the clients at the
	// total rate. A send that fails counts as sent and lost.
	var start, end time.Time
	lateness := runPaced(ctx, func(p *pacer) {
		start, end = p.start, p.start.Add(o.Duration)
		msg := make([]byte, o.Size)
		for k := 0; k < MaxOps; k++ {
			at := start.Add(time.Duration(k) * interval)
			if !at.Before(end) || !p.wait(at) {
				return
			}
			binary.BigEndian.PutUint64(msg, uint64(at.UnixNano()))
			sent.Add(1)
			if _, err := conns[k%len(conns)].Write(msg); err != nil {
				sendErrors.Add(1)
				if sendErr == nil && !errors.Is(err, syscallECONNREFUSED) {
					sendErr = fmt.Errorf("udp send: %w", err)
				}
			}
		}
	})
	// Once every reply is in, the receivers need not wait out the linger.
	for received.Load() < sent.Load() && time.Now().Before(lingerEnd) && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond)
	}
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Unix(1, 0))
	}
	wg.Wait()
	elapsed := end.Sub(start)
	total := mergeHists(hists)
	return UDPResult{Sent: sent.Load(), Received: received.Load(), SendErrors: sendErrors.Load(), Elapsed: elapsed,
		Latency: summarize(total), Hist: total, Lateness: summarizeLateness(lateness)}, sendErr
}

// dialUDPClients makes n connected UDP sockets with 4 MiB receive
// buffers, or none: on error it closes those it made.
func dialUDPClients(raddr *net.UDPAddr, n int) ([]*net.UDPConn, error) {
	conns := make([]*net.UDPConn, 0, n)
	for i := range n {
		c, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			closeUDP(conns)
			return nil, fmt.Errorf("udp client %d of %d: %w", i+1, n, err)
		}
		_ = c.SetReadBuffer(4 << 20)
		conns = append(conns, c)
	}
	return conns, nil
}

func closeUDP(conns []*net.UDPConn) {
	for _, c := range conns {
		_ = c.Close()
	}
}
