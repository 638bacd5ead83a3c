package tcp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestIdleClock: the watchdog's count of idle time, tick by tick. Time in
// which its ticks did not run (the proxy descheduled) counts as one period
// at most, so a gap does not pass for idleness, and ticks that are always
// late still reach the limit.
func TestIdleClock(t *testing.T) {
	const slice = 12500 * time.Microsecond // a 100 ms limit: late beyond 50 ms
	type tick struct {
		at   float64 // ms after the reset
		n    uint64  // the byte counters
		idle float64 // ms of idleness observe must report
	}
	tests := []struct {
		name  string
		ticks []tick
	}{
		{"counters stand still: counted from the first tick", []tick{{12.5, 7, 0}, {25, 7, 12.5}, {37.5, 7, 25}, {50, 7, 37.5}, {62.5, 7, 50}, {75, 7, 62.5}, {87.5, 7, 75}, {100, 7, 87.5}, {112.5, 7, 100}}},
		{"a byte moves: the count starts again", []tick{{12.5, 7, 0}, {25, 7, 12.5}, {37.5, 9, 0}, {50, 9, 0}, {62.5, 9, 12.5}}},
		{"moving from the reset", []tick{{12.5, 8, 0}, {25, 8, 0}, {37.5, 8, 12.5}}},
		{"a late tick adds one period, not the gap", []tick{{12.5, 7, 0}, {25, 7, 12.5}, {225, 7, 25}, {237.5, 7, 37.5}}},
		{"late and moving", []tick{{12.5, 7, 0}, {225, 8, 0}, {237.5, 8, 0}, {250, 8, 12.5}}},
		{"late by exactly the allowance: still counted", []tick{{12.5, 7, 0}, {62.5, 7, 50}, {75, 7, 62.5}}},
		{"every tick late: a period each, the limit is reached", []tick{{100, 7, 0}, {200, 7, 12.5}, {300, 7, 25}, {400, 7, 37.5}, {500, 7, 50}, {600, 7, 62.5}, {700, 7, 75}, {800, 7, 87.5}, {900, 7, 100}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t0 := time.Unix(1_000_000, 0)
			ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
			var c idleClock
			c.reset(t0, 7)
			for _, tk := range tt.ticks {
				assert.Equal(t, ms(tk.idle), c.observe(t0.Add(ms(tk.at)), tk.n, slice), "tick at %v ms", tk.at)
			}
		})
	}
}
