package gate

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/l4bench/l4bench/bench/report"
	"github.com/l4bench/l4bench/bench/stats"
)

// abRun is one run with two builds of l4proxy-splice: the machine's speed
// drifts over the rounds (drift), the same for both builds, and head's
// values are base's times headFactor plus the per-round wobble.
func abRun(rounds int, metric, better string, baseValue float64, head func(round int, base float64) float64) *report.Results {
	r := &report.Results{Schema: report.Schema, Settings: report.Settings{Count: rounds}}
	var bs, hs []float64
	var rs []int
	for i := 1; i <= rounds; i++ {
		drift := 1 + 0.15*float64(i%3) // the machine, up to 30% apart between rounds
		b := baseValue * drift
		if metric == "fds_per_conn" {
			b = baseValue
		}
		bs, hs, rs = append(bs, b), append(hs, head(i, b)), append(rs, i)
	}
	add := func(target string, xs []float64) {
		r.Records = append(r.Records, report.Record{Scenario: "s", Target: target, Metric: metric, Better: better,
			Samples: xs, Rounds: rs, Median: stats.Median(xs)})
	}
	add("l4proxy-splice@base", bs)
	add("l4proxy-splice@head", hs)
	return r
}

func TestCompareAB(t *testing.T) {
	wobble := func(round int) float64 { return 1 + 0.004*float64(round%2*2-1) } // ±0.4%
	tests := []struct {
		name       string
		run        *report.Results
		allowances map[string]float64
		verdict    string
	}{
		{"the same build", abRun(5, "throughput", "higher", 1e9, func(i int, b float64) float64 { return b * wobble(i) }), nil, Same},
		{"10% slower in every round, allowance 5%", abRun(5, "throughput", "higher", 1e9, func(i int, b float64) float64 { return 0.9 * b * wobble(i) }),
			map[string]float64{"throughput": 5}, Regressed},
		{"10% slower, allowance 20%", abRun(5, "throughput", "higher", 1e9, func(i int, b float64) float64 { return 0.9 * b * wobble(i) }),
			map[string]float64{"throughput": 20}, Within},
		{"10% faster", abRun(5, "throughput", "higher", 1e9, func(i int, b float64) float64 { return 1.1 * b * wobble(i) }), nil, Improved},
		{"one fd more per connection", abRun(5, "fds_per_conn", "lower", 6, func(int, float64) float64 { return 7 }),
			map[string]float64{"s/fds_per_conn": 1}, Regressed},
		{"slower in four rounds of five is not significant at 5 rounds", abRun(5, "throughput", "higher", 1e9, func(i int, b float64) float64 {
			if i == 3 {
				return b * 1.01
			}
			return 0.9 * b
		}), map[string]float64{"throughput": 5}, Same},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := CompareAB(tt.run, "base", "head", Options{Allowances: tt.allowances})
			require.NoError(t, err)
			require.Len(t, rows, 1)
			assert.Equal(t, "l4proxy-splice@head", rows[0].Target)
			assert.Equal(t, tt.verdict, rows[0].Verdict, "delta %.2f%% p %.3f allowance %.1f", rows[0].Delta, rows[0].P, rows[0].Allowance)
		})
	}
}

// A head build that cannot start, or dies, fails the gate, named.
func TestCompareABFailsSafe(t *testing.T) {
	same := func(_ int, b float64) float64 { return b }
	noHead := abRun(5, "throughput", "higher", 1e9, same)
	noHead.Records = noHead.Records[:1]
	noHead.Failures = []report.Failure{{Target: "l4proxy-splice@head", Why: "failed to start: exit status 2"}}
	stopped := abRun(5, "throughput", "higher", 1e9, same)
	stopped.Failures = []report.Failure{{Target: "l4proxy-splice@head", Scenario: "syscalls-up", Why: "its data path was userspace under strace, not the expected splice"}}
	died := abRun(5, "throughput", "higher", 1e9, same)
	died.Records[1].Samples, died.Records[1].Rounds = died.Records[1].Samples[:2], died.Records[1].Rounds[:2]
	tests := []struct {
		name    string
		run     *report.Results
		verdict string
		note    string
	}{
		{"head never started", noHead, Missing, "failed to start: exit status 2"},
		{"head died after round 2", died, TooFew, "2 rounds with both builds of the 5 asked for"},
		{"head stopped splicing", stopped, Failed, "data path was userspace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := CompareAB(tt.run, "base", "head", Options{})
			require.NoError(t, err)
			bad := RegressedRows(rows)
			require.NotEmpty(t, bad)
			assert.Equal(t, tt.verdict, bad[0].Verdict)
			assert.Equal(t, "l4proxy-splice@head", bad[0].Target)
			assert.Contains(t, bad[0].Note, tt.note)
		})
	}
	_, err := CompareAB(abRun(5, "throughput", "higher", 1, same), "old", "new", Options{})
	assert.ErrorContains(t, err, "no target named l4proxy-<strategy>@old or @new")
}

// The allowances come from A/A runs: the largest change seen, times the
// margin, never below the floor.
func TestCalibrate(t *testing.T) {
	runs := []*report.Results{
		abRun(5, "throughput", "higher", 1e9, func(i int, b float64) float64 { return b * 0.97 }),
		abRun(5, "throughput", "higher", 1e9, func(i int, b float64) float64 { return b * 1.02 }),
	}
	c, err := Calibrate(runs, "base", "head", 1.5, 1)
	require.NoError(t, err)
	n := c.Metrics["s/throughput"]
	assert.InDelta(t, 3, n.Largest, 1e-9)
	assert.InDelta(t, 4.5, n.Allowance, 1e-9)
	assert.Equal(t, 2, n.Rows)

	fixed := []*report.Results{abRun(5, "fds_per_conn", "lower", 2, func(int, float64) float64 { return 2 })}
	c, err = Calibrate(fixed, "base", "head", 1.5, 1)
	require.NoError(t, err)
	assert.InDelta(t, 1, c.Metrics["s/fds_per_conn"].Allowance, 1e-9, "a metric that never moves gets the floor")

	cal, err := LoadCalibration("")
	require.NoError(t, err, "the built-in calibration parses")
	for _, k := range cal.Keys() {
		assert.Positive(t, cal.Metrics[k].Allowance, k)
	}
}

// Leave-one-out gates each A/A run with allowances tuned on the others:
// the run whose noise nothing else showed is the one that fails.
func TestLeaveOneOut(t *testing.T) {
	slower := func(pct float64) *report.Results {
		return abRun(5, "throughput", "higher", 1e9, func(_ int, b float64) float64 { return b * (1 - pct/100) })
	}
	runs := []*report.Results{slower(2), slower(3), slower(10)}
	for _, tt := range []struct {
		name   string
		margin float64
		failed []int // the held-out runs that raised a false alarm
	}{
		{"1.5 x the others' largest (4.5%) fails the 10% run", 1.5, []int{2}},
		{"4 x the others' largest (12%) fails none", 4, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			held, err := LeaveOneOut(runs, "base", "head", tt.margin, 1)
			require.NoError(t, err)
			require.Len(t, held, len(runs))
			var failed []int
			for i, h := range held {
				assert.Equal(t, i, h.Run)
				if len(h.Alarms) > 0 {
					failed = append(failed, h.Run)
					assert.Equal(t, "throughput", h.Alarms[0].Metric)
				}
			}
			assert.Equal(t, tt.failed, failed)
		})
	}
	_, err := LeaveOneOut(runs[:1], "base", "head", 2, 1)
	assert.ErrorContains(t, err, "at least 2 A/A runs")
}

// Spreads gives, per metric, each row's |change| and each build's spread
// over its rounds; a set of runs with larger offsets between the builds
// shows larger changes, which Mann-Whitney tells apart from the other set.
func TestSpreads(t *testing.T) {
	set := func(pct float64) []*report.Results {
		var runs []*report.Results
		for i := range 8 {
			off := pct * float64(1+i%3) / 3 // 1/3, 2/3 and all of pct
			runs = append(runs, abRun(5, "throughput", "higher", 1e9, func(_ int, b float64) float64 { return b * (1 - off/100) }))
		}
		return runs
	}
	quiet, err := Spreads(set(1.5), "base", "head")
	require.NoError(t, err)
	noisy, err := Spreads(set(9), "base", "head")
	require.NoError(t, err)
	q, n := quiet["s/throughput"], noisy["s/throughput"]
	require.Len(t, q.Changes, 8, "one row per run")
	require.Len(t, q.RoundCV, 16, "each build's rounds in each row")
	require.Len(t, q.Diffs, 8)
	assert.InDeltaSlice(t, []float64{-0.5, -0.5 * 1.3 / 1.15, -0.5 / 1.15, -0.5, -0.5 * 1.3 / 1.15}, q.Diffs[0], 1e-9, "head 0.5% below base, round by round, over base's median")
	assert.InDelta(t, 0.5, q.Changes[0], 1e-9)
	assert.InDelta(t, 1.5, q.Changes[2], 1e-9)
	assert.InDelta(t, 6*stats.Median(q.Changes), stats.Median(n.Changes), 1e-9, "offsets 6 times larger")
	assert.Less(t, stats.P(q.Changes, n.Changes), 0.01)
	for i, cv := range q.RoundCV {
		// abRun's machine drift: 1.15, 1.3, 1, 1.15, 1.3 times the value.
		assert.InDelta(t, q.RoundCV[0], cv, 1e-6, "the same drift in every build and run (%d)", i)
		assert.InDelta(t, 10.64, cv, 0.01)
	}
	assert.Greater(t, stats.P(q.RoundCV, n.RoundCV), 0.5, "the same round spread in both sets")

	_, err = Spreads([]*report.Results{{Schema: report.Schema}}, "base", "head")
	assert.Error(t, err, "a run without the two builds")
}

// RunLevel separates round noise from offsets that hold for a whole row.
func TestRunLevel(t *testing.T) {
	for _, tt := range []struct {
		name    string
		diffs   [][]float64
		within  float64
		between float64
	}{
		{"round noise only: every row the same", [][]float64{{-2, 2, -2, 2}, {-2, 2, -2, 2}, {-2, 2, -2, 2}}, math.Sqrt(16.0 / 3), 0},
		{"an offset per row, no round noise", [][]float64{{-5, -5, -5, -5}, {0, 0, 0, 0}, {5, 5, 5, 5}}, 0, 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, b, e := Spread{Diffs: tt.diffs}.RunLevel()
			assert.InDelta(t, tt.within, w, 1e-9)
			assert.InDelta(t, tt.between, b, 1e-9)
			assert.InDelta(t, tt.within/2, e, 1e-9, "4 rounds a row")
		})
	}
	w, _, _ := Spread{Diffs: [][]float64{{1, 2}}}.RunLevel()
	assert.True(t, math.IsNaN(w), "one row says nothing of the rows' spread")
}

func TestABFormats(t *testing.T) {
	run := abRun(5, "throughput", "higher", 1e9, func(i int, b float64) float64 { return 0.8 * b })
	rows, err := CompareAB(run, "base", "head", Options{Allowances: map[string]float64{"throughput": 5}})
	require.NoError(t, err)
	var buf bytes.Buffer
	WriteMarkdown(&buf, rows, Options{})
	md := buf.String()
	assert.Contains(t, md, "### l4bench gate: FAIL, 1 failing row(s)")
	assert.Contains(t, md, "| s | l4proxy-splice@head | throughput |")
	assert.Contains(t, md, "-20.0%")
	assert.Contains(t, md, "**REGRESSION**")

	buf.Reset()
	require.NoError(t, WriteJSON(&buf, rows))
	var out struct {
		Pass    bool
		Failing int
		Rows    []JSONRow
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &out))
	assert.False(t, out.Pass)
	assert.Equal(t, 1, out.Failing)
	assert.Equal(t, "paired", out.Rows[0].Kind)
	assert.InDelta(t, -20, out.Rows[0].Change, 1e-9)

	buf.Reset()
	WriteBenchstat(&buf, rows)
	assert.Equal(t, 10, strings.Count(buf.String(), "BenchmarkS/target=l4proxy-splice@head/metric=throughput 1 "), "both builds' five rounds")
}
