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

func TestCIAndSignificance(t *testing.T) {
	few := CI([]float64{3, 1, 2})
	assert.Equal(t, 2.0, few.Center)
	assert.Equal(t, 1.0, few.Lo, "too few samples: the whole range")
	assert.Equal(t, 3.0, few.Hi)
	assert.NotEmpty(t, few.Warning)

	many := CI([]float64{10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	assert.Equal(t, 15.0, many.Center)
	assert.Greater(t, many.Lo, 10.0, "narrower than the range with 11 samples")
	assert.Less(t, many.Hi, 20.0)

	tests := []struct {
		name   string
		xs, ys []float64
		differ bool
	}{
		{"apart, 5 a side", []float64{1, 2, 3, 4, 5}, []float64{10, 11, 12, 13, 14}, true},
		{"apart, 3 a side: cannot be significant", []float64{1, 2, 3}, []float64{10, 11, 12}, false},
		{"overlapping", []float64{1, 5, 9, 13, 17}, []float64{2, 6, 10, 14, 18}, false},
		{"empty", nil, []float64{1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.differ, Differ(tt.xs, tt.ys), "p=%.3f", P(tt.xs, tt.ys))
		})
	}
}
