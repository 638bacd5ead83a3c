package copy_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/l4bench/l4bench/internal/fdlimit"
	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

// pipeFDs counts this process's open pipe fds.
func pipeFDs(t *testing.T) int {
	t.Helper()
	n, err := fdlimit.Count("self", "pipe:")
	require.NoError(t, err)
	return n
}

// What an idle connection costs in pipes, after bytes crossed it both
// ways: splice (Go's ReadFrom) keeps a pipe per direction for the
// connection's life; lazysplice gives its pipes back between bursts, so
// idle connections hold none (the shared pool keeps a bounded few).
func TestIdleConnectionsHoldPipes(t *testing.T) {
	const conns = 20
	tests := []struct {
		strategy string
		atLeast  int // pipe fds held by the idle relays, beyond the baseline
		atMost   int
	}{
		{"splice", conns * 2 * 2, conns*2*2 + 16},
		{"lazysplice", 0, 2 * 2}, // the pool's pipes, at most 2 kept from the bursts here (one per direction in flight)
	}
	for _, tt := range tests {
		t.Run(tt.strategy, func(t *testing.T) {
			s, err := copystrat.Lookup(tt.strategy)
			require.NoError(t, err)
			// One relay first, so that a pool exists before the baseline.
			ds := s.(copystrat.DirectionStrategy)
			warm := newRelay(t, ds)
			warm.start()
			exchange(t, warm)
			// Go keeps the pipes of finished splices in a sync.Pool whose
			// finalizers close them after two collections: let an earlier
			// test's go now, not during the count.
			for range 3 {
				runtime.GC()
				time.Sleep(20 * time.Millisecond)
			}
			before := pipeFDs(t)
			var relays []*relay
			for i := 0; i < conns; i++ {
				r := newRelay(t, ds)
				r.start()
				exchange(t, r)
				relays = append(relays, r)
			}
			time.Sleep(50 * time.Millisecond)
			held := pipeFDs(t) - before
			assert.GreaterOrEqual(t, held, tt.atLeast, "pipe fds held by %d idle connections", conns)
			assert.LessOrEqual(t, held, tt.atMost, "pipe fds held by %d idle connections", conns)
			for _, r := range append(relays, warm) {
				r.stop(t)
			}
		})
	}
}

// exchange sends a few bytes each way through a relay and reads them.
func exchange(t *testing.T, r *relay) {
	t.Helper()
	buf := make([]byte, 5)
	_, err := r.client.Write([]byte("hello"))
	require.NoError(t, err)
	_, err = r.backend.Read(buf)
	require.NoError(t, err)
	_, err = r.backend.Write([]byte("world"))
	require.NoError(t, err)
	_, err = r.client.Read(buf)
	require.NoError(t, err)
}
