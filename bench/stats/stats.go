// Package stats summarises repeated samples: the median with its 95%
// confidence interval, and the significance of a difference, with
// benchstat's statistics (golang.org/x/perf/benchmath: no assumption on
// the distribution).
package stats

import (
	"math"
	"sort"

	"golang.org/x/perf/benchmath"
)

// Alpha is the significance level of every "better", "best" or "trails".
const Alpha = 0.05

// Interval is a median and its 95% confidence interval.
type Interval struct {
	Center, Lo, Hi float64
	// Warning is set when the interval is as wide as the samples allow
	// (too few samples for 95% confidence).
	Warning string
}

// CI is the median of xs with its 95% confidence interval (benchmath's
// order-statistics interval). With fewer than 6 samples it cannot reach
// 95%, and is the whole range, with a warning.
func CI(xs []float64) Interval {
	if len(xs) == 0 {
		return Interval{Center: math.NaN(), Lo: math.NaN(), Hi: math.NaN()}
	}
	s := benchmath.NewSample(sorted(xs), &benchmath.DefaultThresholds)
	sum := benchmath.AssumeNothing.Summary(s, 0.95)
	iv := Interval{Center: sum.Center, Lo: sum.Lo, Hi: sum.Hi}
	if len(sum.Warnings) > 0 {
		iv.Warning = sum.Warnings[0].Error()
	}
	// benchmath gives an infinite bound when the samples are too few for
	// 95%: the range of the samples is then all that can be said.
	if math.IsInf(iv.Lo, 0) || math.IsInf(iv.Hi, 0) {
		iv.Lo, iv.Hi = MinMax(xs)
	}
	return iv
}

// P is the p-value of the Mann-Whitney U test that xs and ys come from the
// same distribution (1 when either is empty). With 3 samples a side it
// cannot fall below 0.1, with 5 a side below 0.008.
func P(xs, ys []float64) float64 {
	if len(xs) == 0 || len(ys) == 0 {
		return 1
	}
	t := benchmath.Thresholds{CompareAlpha: Alpha}
	a, b := benchmath.NewSample(sorted(xs), &t), benchmath.NewSample(sorted(ys), &t)
	return benchmath.AssumeNothing.Compare(a, b).P
}

// Differ says whether xs and ys differ significantly.
func Differ(xs, ys []float64) bool { return P(xs, ys) <= Alpha }

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
