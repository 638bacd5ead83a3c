package gate

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/l4bench/l4bench/bench/report"
)

func TestPlantMovesHeadOnlyTheWorseWay(t *testing.T) {
	same := func(_ int, b float64) float64 { return b }
	tests := []struct {
		metric, better string
		want           float64 // head's first sample over base's
	}{
		{"throughput", "higher", 0.9},
		{"cpu_per_gib", "lower", 1.1},
	}
	for _, tt := range tests {
		t.Run(tt.metric, func(t *testing.T) {
			r := abRun(5, tt.metric, tt.better, 100, same)
			p := Plant(r, "head", "s", tt.metric, 10)
			base, head := p.Find("s", "l4proxy-splice@base", tt.metric), p.Find("s", "l4proxy-splice@head", tt.metric)
			require.NotNil(t, base)
			require.NotNil(t, head)
			assert.InDelta(t, tt.want, head.Samples[0]/base.Samples[0], 1e-9)
			assert.Equal(t, r.Records[0].Samples, base.Samples, "base is left as it was")
			assert.InDelta(t, 1, r.Find("s", "l4proxy-splice@head", tt.metric).Samples[0]/base.Samples[0], 1e-9,
				"the run planted into is not changed")
		})
	}
}

func TestJoinNumbersRoundsOn(t *testing.T) {
	a := abRun(5, "throughput", "higher", 100, func(_ int, b float64) float64 { return b })
	b := abRun(5, "throughput", "higher", 200, func(_ int, b float64) float64 { return b })
	j, err := Join([]*report.Results{a, b})
	require.NoError(t, err)
	assert.Equal(t, 10, j.Settings.Count)
	rec := j.Find("s", "l4proxy-splice@head", "throughput")
	require.NotNil(t, rec)
	assert.ElementsMatch(t, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, rec.Rounds)
	byRound := rec.ByRound()
	assert.Equal(t, a.Records[1].Samples[0], byRound[1])
	assert.Equal(t, b.Records[1].Samples[0], byRound[6])

	b.Records = b.Records[:1]
	b.Records[0].Target = "l4proxy-pooled@base"
	_, err = Join([]*report.Results{a, b})
	assert.ErrorContains(t, err, "s / l4proxy-splice@base / throughput is in 1 of the 2 runs", "a record of run 1 that run 2 lacks")
}

// A tail percentile is recorded only with enough requests beyond it: one
// that a run lacks is left out of the join; a gated metric is not.
func TestJoinLeavesOutTailsARunLacks(t *testing.T) {
	tests := []struct {
		metric string
		err    string
	}{
		{"latency_p999", ""},
		{"latency_p50", "s / l4proxy-splice@base / latency_p50 is in 1 of the 2 runs"},
	}
	for _, tt := range tests {
		t.Run(tt.metric, func(t *testing.T) {
			a := abRun(5, "rps", "higher", 100, func(_ int, b float64) float64 { return b })
			a.Records = append(a.Records, abRun(5, tt.metric, "lower", 50, func(_ int, b float64) float64 { return b }).Records...)
			b := abRun(5, "rps", "higher", 100, func(_ int, b float64) float64 { return b })
			j, err := Join([]*report.Results{a, b})
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Nil(t, j.Find("s", "l4proxy-splice@base", tt.metric), "in one run of two: left out")
			rps := j.Find("s", "l4proxy-splice@head", "rps")
			require.NotNil(t, rps)
			assert.Len(t, rps.Samples, 10, "the rest joined")
		})
	}
}

// On a quiet A/A run (±0.4% per round), a planted change is caught once it
// is beyond the allowance, and a 10% change within a 20% allowance never is.
func TestDetectableFindsTheAllowance(t *testing.T) {
	wobble := func(round int, b float64) float64 { return b * (1 + 0.004*float64(round%2*2-1)) }
	var runs []*report.Results
	for range 3 {
		runs = append(runs, abRun(5, "throughput", "higher", 1e9, wobble))
	}
	sizes := []float64{1, 5, 10, 15, 20, 25, 30, 50, 150}
	ds, err := Detectable(runs, "base", "head", Options{Allowances: map[string]float64{"throughput": 20}}, sizes, 0.9)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	assert.Equal(t, "s/throughput", ds[0].Key)
	assert.Equal(t, 3, ds[0].Trials)
	assert.Equal(t, 0, ds[0].Caught10)
	// 15% is within the allowance; at 20% the rounds' noise already puts
	// the median change beyond it, and 25% is beyond it in every round.
	assert.Greater(t, ds[0].Smallest, 15.0)
	assert.LessOrEqual(t, ds[0].Smallest, 25.0)

	ds, err = Detectable(runs, "base", "head", Options{Allowances: map[string]float64{"throughput": 120}}, sizes, 0.9)
	require.NoError(t, err)
	assert.True(t, math.IsNaN(ds[0].Smallest), "no loss of a higher-is-better metric beyond 100%% is tried")
}
