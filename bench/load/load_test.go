package load

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/l4bench/l4bench/bench/backend"
	"github.com/l4bench/l4bench/internal/blackhole"
	"github.com/l4bench/l4bench/internal/fdlimit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func start(t *testing.T, kind string, udp bool) string {
	t.Helper()
	return startBackend(t, kind, udp).Addr()
}

func startBackend(t *testing.T, kind string, udp bool) *backend.Backend {
	t.Helper()
	b, err := backend.Start(kind, "127.0.0.1:0", udp, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestStreamDirections(t *testing.T) {
	tests := []struct{ direction, backend string }{{Up, backend.Sink}, {Down, backend.Source}, {Both, backend.Echo}}
	for _, tt := range tests {
		t.Run(tt.direction, func(t *testing.T) {
			b, err := backend.Start(tt.backend, "127.0.0.1:0", false, 0)
			require.NoError(t, err)
			defer b.Close()
			r, err := Stream(context.Background(), StreamOptions{Options: Options{Addr: b.Addr(), Duration: 300 * time.Millisecond}, Streams: 2, Direction: tt.direction, Warmup: 100 * time.Millisecond, Received: b.Received})
			require.NoError(t, err)
			assert.Positive(t, r.Bytes)
			assert.Less(t, r.Bytes, r.TotalBytes, "the warm-up is not counted")
			assert.Positive(t, r.Elapsed)
			assert.Less(t, r.Elapsed, 2*time.Second, "bounded by the duration")
			if tt.direction == Up {
				assert.LessOrEqual(t, r.TotalBytes, b.Received(), "counted at the sink: no more than arrived")
			}
		})
	}
	_, err := Stream(context.Background(), StreamOptions{Options: Options{Addr: "127.0.0.1:1", Duration: time.Second}, Direction: Up})
	assert.ErrorContains(t, err, "receiving end's counter")
	_, err = Stream(context.Background(), StreamOptions{Options: Options{Addr: "127.0.0.1:1", Duration: time.Second}, Direction: Down, Warmup: time.Second})
	assert.ErrorContains(t, err, "warm-up")
}

func TestRRClosedAndOpen(t *testing.T) {
	echo := startBackend(t, backend.Echo, false)
	addr := echo.Addr()
	closed, err := RR(context.Background(), RROptions{Options: Options{Addr: addr, Duration: 200 * time.Millisecond}, Conns: 2})
	require.NoError(t, err)
	assert.Positive(t, closed.Requests)
	// fortio's invariant: what the client counts is what the backend got.
	// Each counted request reached the echo server (64 bytes each); at
	// most one more per connection was on its way when time ran out.
	// The echo server counts a connection's bytes when it closes.
	require.Eventually(t, func() bool { return echo.Received() >= 64*closed.Requests }, 2*time.Second, 5*time.Millisecond,
		"the backend got %d bytes for %d requests", echo.Received(), closed.Requests)
	assert.LessOrEqual(t, echo.Received(), 64*(closed.Requests+2))
	assert.LessOrEqual(t, closed.Latency.P50, closed.Latency.P99)

	open, err := RR(context.Background(), RROptions{Options: Options{Addr: addr, Duration: 500 * time.Millisecond}, Conns: 2, Rate: 1000})
	require.NoError(t, err)
	// A fixed schedule: 1000/s for 0.5 s is 500 requests, whatever the latency.
	assert.InDelta(t, 500, open.Requests, 2)
}

func TestCRRAndIdle(t *testing.T) {
	echo := startBackend(t, backend.Echo, false)
	addr := echo.Addr()
	r, err := CRR(context.Background(), CRROptions{Options: Options{Addr: addr, Duration: 200 * time.Millisecond}, Workers: 2})
	require.NoError(t, err)
	assert.Positive(t, r.Conns)
	// Every counted connection reached the backend and made one whole
	// exchange; a failed one ends the run with an error instead.
	assert.Equal(t, r.Conns, echo.Accepted())
	require.Eventually(t, func() bool { return echo.Received() >= 64*r.Conns }, 2*time.Second, 5*time.Millisecond,
		"the backend got %d bytes for %d connections", echo.Received(), r.Conns)
	assert.Equal(t, 64*r.Conns, echo.Received())
	assert.Equal(t, r.Conns, r.CycleHist.TotalCount(), "each connection's whole exchange was timed too")
	assert.LessOrEqual(t, r.Connect.P50, r.Cycle.P50, "the connect is part of the exchange")

	ic, err := OpenIdle(context.Background(), addr, 20, 4096)
	require.NoError(t, err)
	assert.Equal(t, 20, ic.Len())
	ic.Close()
}

func TestUDPLossAndSchedule(t *testing.T) {
	r, err := UDP(context.Background(), UDPOptions{Options: Options{Addr: start(t, backend.Echo, true), Duration: 300 * time.Millisecond}, Clients: 2, Rate: 1000})
	require.NoError(t, err)
	assert.InDelta(t, 300, r.Sent, 4, "sent on schedule")
	assert.LessOrEqual(t, r.Received, r.Sent)
	assert.GreaterOrEqual(t, r.Loss(), 0.0)
	assert.Less(t, r.Loss(), 0.05, "loopback echo at 1000/s loses next to nothing")
}

// TestUDPDialErrorLeavesNothingRunning: when the fifth socket cannot be
// made (fd limit), UDP returns the error at once and no goroutine of the
// clients already made is left behind.
func TestUDPDialErrorLeavesNothingRunning(t *testing.T) {
	addr := start(t, backend.Echo, true)
	var old syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old))
	lowered := old
	// Sockets of earlier tests that a goroutine was reading when they
	// were closed are released only once that read returns: counted now,
	// and gone a moment later, they would leave more room than 4 (a CI
	// run made all 50 clients once). Wait until the count holds still.
	var fds int
	require.Eventually(t, func() bool {
		n, err := fdlimit.Count("self", "")
		settled := err == nil && n == fds
		fds = n
		return settled
	}, 5*time.Second, 50*time.Millisecond, "this process's fd count kept moving")
	limit, err := fdlimit.Leaving("self", 4)
	require.NoError(t, err)
	lowered.Cur = uint64(limit)
	before := goleak.IgnoreCurrent()
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered))
	began := time.Now()
	_, err = UDP(context.Background(), UDPOptions{Options: Options{Addr: addr, Duration: 5 * time.Second}, Clients: 50, Rate: 1000})
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "of 50")
	assert.Less(t, time.Since(began), time.Second, "returned at once")
	goleak.VerifyNone(t, before)
}

// TestUDPStopsOnCancel: a cancelled context ends senders and receivers at
// once, not at the end of the duration.
func TestUDPStopsOnCancel(t *testing.T) {
	addr := start(t, backend.Echo, true)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	before := goleak.IgnoreCurrent()
	began := time.Now()
	_, _ = UDP(ctx, UDPOptions{Options: Options{Addr: addr, Duration: 10 * time.Second}, Clients: 4, Rate: 1000})
	assert.Less(t, time.Since(began), time.Second)
	goleak.VerifyNone(t, before)
}

func TestOpenLoopsRecordLateness(t *testing.T) {
	echo := start(t, backend.Echo, false)
	rr, err := RR(context.Background(), RROptions{Options: Options{Addr: echo, Duration: 400 * time.Millisecond}, Conns: 3, Rate: 1000})
	require.NoError(t, err)
	assert.Equal(t, rr.Requests, rr.Lateness.Count, "every paced send has its lateness recorded")
	assert.LessOrEqual(t, rr.Lateness.P50, rr.Lateness.P99)
	assert.LessOrEqual(t, rr.Lateness.P99, rr.Lateness.Max)
	t.Logf("rr open loop: lateness p50 %.1f µs p99 %.1f µs max %.1f µs; latency %v", rr.Lateness.P50, rr.Lateness.P99, rr.Lateness.Max, rr.Latency)

	u, err := UDP(context.Background(), UDPOptions{Options: Options{Addr: start(t, backend.Echo, true), Duration: 400 * time.Millisecond}, Clients: 3, Rate: 1000})
	require.NoError(t, err)
	assert.InDelta(t, 400, u.Sent, 2, "a fixed schedule: 1000/s for 0.4 s")
	assert.Equal(t, u.Sent, u.Lateness.Count)
	t.Logf("udp: lateness p50 %.1f µs p99 %.1f µs max %.1f µs; latency %v", u.Lateness.P50, u.Lateness.P99, u.Lateness.Max, u.Latency)
}

// TestUDPCountsFailedSendsAndOutlivesICMPErrors: datagrams to a port
// nobody listens on are lost, and the ICMP errors they cause come back as
// ECONNREFUSED on the next send or read, whichever comes first; a failed
// send still counts as sent. The receivers must keep reading, so that
// once an echo server binds the port, its echoes are counted.
func TestUDPCountsFailedSendsAndOutlivesICMPErrors(t *testing.T) {
	b, err := backend.Start(backend.Echo, "127.0.0.1:0", true, 0)
	require.NoError(t, err)
	addr := b.Addr()
	require.NoError(t, b.Close())
	go func() {
		time.Sleep(300 * time.Millisecond)
		b2, err := backend.Start(backend.Echo, addr, true, 0)
		if err == nil {
			t.Cleanup(func() { _ = b2.Close() })
		}
	}()
	u, err := UDP(context.Background(), UDPOptions{Options: Options{Addr: addr, Duration: 800 * time.Millisecond}, Clients: 1, Rate: 500})
	require.NoError(t, err, "ECONNREFUSED is loss, not a failure of the client")
	assert.InDelta(t, 400, u.Sent, 2, "failed sends count as sent")
	assert.Positive(t, u.Received, "the receiver kept reading after the ICMP errors")
	assert.Less(t, u.Received, u.Sent, "what was sent before the echo server bound is lost")
	assert.InDelta(t, float64(u.Sent-u.Received)/float64(u.Sent), u.Loss(), 1e-9)
}

func TestUDPCapacitySearch(t *testing.T) {
	tests := []struct {
		name     string
		backend  string
		positive bool
	}{{"echo", backend.Echo, true}, {"nothing comes back", backend.Sink, false}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := CapacityOptions{Options: Options{Addr: start(t, tt.backend, true)}, Clients: 2, Step: 100 * time.Millisecond, From: 5000, Ceiling: 40000, Bisections: 2}
			r, err := UDPCapacity(context.Background(), o)
			require.NoError(t, err)
			require.NotEmpty(t, r.Steps)
			assert.LessOrEqual(t, len(r.Steps), 4+2, "bounded: doublings from 5000 to 40000, then 2 bisections")
			if !tt.positive {
				assert.Zero(t, r.PPS, "no rate is forwarded when nothing comes back")
				assert.Len(t, r.Steps, 4, "the first rate is lost, then halved down to an eighth of it: 5000, 2500, 1250, 625")
				return
			}
			assert.Positive(t, r.PPS)
			for _, st := range r.Steps {
				assert.Positive(t, st.Sent)
				if st.Loss <= 0.001 {
					assert.LessOrEqual(t, st.Achieved, r.PPS, "the result is the highest rate forwarded")
				}
			}
			t.Logf("capacity %.0f/s (client bound %v) steps %+v", r.PPS, r.ClientBound, r.Steps)
		})
	}
}

// The pacer alone wakes once per intended time: no wake-up is skipped or
// doubled, whatever its lateness, and the lateness it reports is real.
func TestPaceOnlyWakesOncePerIntendedTime(t *testing.T) {
	const rate, dur = 1000, 300 * time.Millisecond
	began := time.Now()
	l, over := PaceOnly(context.Background(), rate, dur, 20*time.Microsecond)
	took := time.Since(began)
	// Every intended time in dur is waited for once (give or take the
	// first and last). A stall at the very end may let the pacer catch up
	// on intended times past dur before it sees the deadline, but never on
	// more than the time it actually ran.
	assert.GreaterOrEqual(t, float64(l.Count), rate*dur.Seconds()-2)
	assert.LessOrEqual(t, float64(l.Count), rate*took.Seconds()+1)
	assert.GreaterOrEqual(t, l.P99, l.P50)
	assert.GreaterOrEqual(t, l.Max, l.P99)
	assert.GreaterOrEqual(t, over, 0.0)
	assert.LessOrEqual(t, over, 1.0)
}

// OpenIdle fails whole: when a connection cannot be set up, it names it,
// closes every connection it opened, and leaves no goroutine behind.
func TestOpenIdleFailsWhole(t *testing.T) {
	closer, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer closer.Close()
	var accepted []net.Conn
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for i := 0; ; i++ {
			c, err := closer.Accept()
			if err != nil {
				return
			}
			if i < 5 {
				accepted = append(accepted, c) // held: warm-up echo never comes
				continue
			}
			_ = c.Close() // the sixth and later: warm-up read fails
		}
	}()
	refuser, err := blackhole.Refusing()
	require.NoError(t, err)
	defer refuser.Close()
	deadAddr := refuser.Addr()

	tests := []struct {
		name, addr, want string
		warmup           int
	}{
		{"refused", deadAddr, "connection refused", 0},
		{"warm-up cut", closer.Addr().String(), "warm-up", 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ic, err := OpenIdle(ctx, tt.addr, 50, tt.warmup)
			require.Error(t, err)
			assert.Nil(t, ic)
			assert.Contains(t, err.Error(), "idle connection")
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_ = closer.Close()
	<-acceptDone
	for _, c := range accepted {
		_ = c.Close()
	}
}

// Every load client is a Runner over the shared Options, and the capacity
// search fails loudly when it cannot finish within a Duration it was given.
func TestRunnersShareOptions(t *testing.T) {
	addr := start(t, backend.Echo, false)
	var r Runner[CRRResult] = CRROptions{Options: Options{Addr: addr, Duration: 100 * time.Millisecond}}
	res, err := r.Run(context.Background())
	require.NoError(t, err)
	assert.Positive(t, res.Conns)

	udp := start(t, backend.Echo, true)
	_, err = CapacityOptions{Options: Options{Addr: udp, Duration: time.Nanosecond}}.Run(context.Background())
	assert.ErrorContains(t, err, "not done within its 1ns")
}
