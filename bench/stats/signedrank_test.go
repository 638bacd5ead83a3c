package stats

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSignedRankGreater(t *testing.T) {
	tests := []struct {
		name string
		ds   []float64
		want float64
	}{
		{"all five up: the smallest p of five rounds", []float64{0.1, 0.2, 0.3, 0.4, 0.5}, 1.0 / 32},
		{"all five down", []float64{-0.1, -0.2, -0.3, -0.4, -0.5}, 1},
		{"one fd more in every round (tied magnitudes)", []float64{1, 1, 1, 1, 1}, 1.0 / 32},
		// Ranks 1..5, positives {5,4,3,2}: W+ = 14 of 15. Patterns with
		// W+ >= 14: all positive (15), all but rank 1 (14): 2 of 32.
		{"smallest one down", []float64{-0.1, 0.2, 0.3, 0.4, 0.5}, 2.0 / 32},
		{"no change at all", []float64{0, 0, 0, 0, 0}, 1},
		{"zeros are dropped", []float64{0, 0.2, 0, 0.4, 0}, 1.0 / 4},
		{"symmetric", []float64{-1, 1}, 3.0 / 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.InDelta(t, tt.want, SignedRankGreater(tt.ds), 1e-12)
		})
	}
}
