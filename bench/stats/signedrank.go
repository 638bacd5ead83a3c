package stats

import (
	"math"
	"slices"
)

// SignedRankGreater is the exact one-sided p-value of Wilcoxon's
// signed-rank test that the paired differences ds lie above zero: the
// chance, were their signs a coin toss, of a positive rank sum at least
// the one seen. Zero differences carry no sign and are dropped; tied
// magnitudes share their mean rank. With no non-zero difference it is 1.
//
// Paired by round, two builds measured side by side differ by much less
// than either drifts over a run, which the unpaired U test cannot use.
// With n differences the smallest p is 2^-n: 0.031 for 5 rounds.
func SignedRankGreater(ds []float64) float64 {
	var mags []float64
	var pos []bool
	for _, d := range ds {
		if d != 0 && !math.IsNaN(d) {
			mags = append(mags, math.Abs(d))
			pos = append(pos, d > 0)
		}
	}
	n := len(mags)
	if n == 0 {
		return 1
	}
	// Doubled ranks are whole numbers even for ties (mean ranks).
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmpFloat(mags[a], mags[b]) })
	rank2 := make([]int, n)
	for i := 0; i < n; {
		j := i
		for j+1 < n && mags[idx[j+1]] == mags[idx[i]] {
			j++
		}
		for k := i; k <= j; k++ {
			rank2[idx[k]] = i + j + 2 // 2 × the mean of ranks i+1 … j+1
		}
		i = j + 1
	}
	seen, total := 0, 0
	for i := range n {
		total += rank2[i]
		if pos[i] {
			seen += rank2[i]
		}
	}
	// ways[s]: sign patterns whose positive doubled-rank sum is s.
	ways := make([]float64, total+1)
	ways[0] = 1
	for _, r := range rank2 {
		for s := total; s >= r; s-- {
			ways[s] += ways[s-r]
		}
	}
	var atLeast float64
	for s := seen; s <= total; s++ {
		atLeast += ways[s]
	}
	return atLeast / math.Pow(2, float64(n))
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
