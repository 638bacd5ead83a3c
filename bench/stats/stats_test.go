package stats

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSummaries(t *testing.T) {
	tests := []struct {
		name                   string
		xs                     []float64
		median, lo, hi, spread float64
	}{
		{"odd", []float64{3, 1, 2}, 2, 1, 3, 50},
		{"even", []float64{4, 1, 3, 2}, 2.5, 1, 4, 60},
		{"single", []float64{7}, 7, 7, 7, 0},
		{"equal", []float64{5, 5, 5}, 5, 5, 5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.median, Median(tt.xs))
			lo, hi := MinMax(tt.xs)
			assert.Equal(t, tt.lo, lo)
			assert.Equal(t, tt.hi, hi)
			assert.InDelta(t, tt.spread, SpreadPct(tt.xs), 1e-9)
		})
	}
	assert.True(t, math.IsNaN(Median(nil)))
	xs := []float64{3, 1, 2}
	Median(xs)
	assert.Equal(t, []float64{3, 1, 2}, xs, "input not reordered")
}
