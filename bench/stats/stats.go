// Package stats summarises repeated samples: the median and the spread
// that every figure in a report carries.
package stats

import (
	"math"
	"sort"
)

// Median of the samples (NaN for none).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := sorted(xs)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// MinMax returns the smallest and largest sample.
func MinMax(xs []float64) (lo, hi float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	s := sorted(xs)
	return s[0], s[len(s)-1]
}

// SpreadPct is half the range of the samples as a percentage of their
// median: "±4%" means every sample lies within about 4% of the median.
func SpreadPct(xs []float64) float64 {
	m := Median(xs)
	if len(xs) < 2 || m == 0 || math.IsNaN(m) {
		return 0
	}
	lo, hi := MinMax(xs)
	return (hi - lo) / 2 / math.Abs(m) * 100
}

func sorted(xs []float64) []float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s
}
