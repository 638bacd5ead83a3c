package load

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/l4bench/l4bench/bench/backend"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func start(t *testing.T, kind string, udp bool) string {
	t.Helper()
	b, err := backend.Start(kind, "127.0.0.1:0", udp, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b.Addr()
}

func TestStreamDirections(t *testing.T) {
	tests := []struct{ direction, backend string }{{Up, backend.Sink}, {Down, backend.Source}, {Both, backend.Echo}}
	for _, tt := range tests {
		t.Run(tt.direction, func(t *testing.T) {
			r, err := Stream(context.Background(), StreamOptions{Addr: start(t, tt.backend, false), Streams: 2, Direction: tt.direction, Duration: 200 * time.Millisecond})
			require.NoError(t, err)
			assert.Positive(t, r.Bytes)
			assert.GreaterOrEqual(t, r.Elapsed, 200*time.Millisecond)
			assert.Less(t, r.Elapsed, 2*time.Second, "bounded by the duration")
		})
	}
}

func TestRRClosedAndOpen(t *testing.T) {
	addr := start(t, backend.Echo, false)
	closed, err := RR(context.Background(), RROptions{Addr: addr, Conns: 2, Duration: 200 * time.Millisecond})
	require.NoError(t, err)
	assert.Positive(t, closed.Requests)
	assert.Equal(t, closed.Requests, closed.Hist.TotalCount(), "every exchange recorded once")
	assert.LessOrEqual(t, closed.Latency.P50, closed.Latency.P99)

	open, err := RR(context.Background(), RROptions{Addr: addr, Conns: 2, Duration: 500 * time.Millisecond, Rate: 1000})
	require.NoError(t, err)
	// A fixed schedule: 1000/s for 0.5 s is 500 requests, whatever the latency.
	assert.InDelta(t, 500, open.Requests, 2)
}

func TestCRRAndIdle(t *testing.T) {
	addr := start(t, backend.Echo, false)
	r, err := CRR(context.Background(), CRROptions{Addr: addr, Workers: 2, Duration: 200 * time.Millisecond})
	require.NoError(t, err)
	assert.Positive(t, r.Conns)
	assert.Equal(t, r.Conns, r.Connect.Count)

	ic, err := OpenIdle(context.Background(), addr, 20, 4096)
	require.NoError(t, err)
	assert.Equal(t, 20, ic.Len())
	ic.Close()
}

func TestUDPLossAndSchedule(t *testing.T) {
	r, err := UDP(context.Background(), UDPOptions{Addr: start(t, backend.Echo, true), Clients: 2, Rate: 1000, Duration: 300 * time.Millisecond})
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
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	var old syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old))
	lowered := old
	lowered.Cur = uint64(len(fds) + 4)
	before := goleak.IgnoreCurrent()
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered))
	began := time.Now()
	_, err = UDP(context.Background(), UDPOptions{Addr: addr, Clients: 50, Rate: 1000, Duration: 5 * time.Second})
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
	_, _ = UDP(ctx, UDPOptions{Addr: addr, Clients: 4, Rate: 1000, Duration: 10 * time.Second})
	assert.Less(t, time.Since(began), time.Second)
	goleak.VerifyNone(t, before)
}
