package gate

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/l4bench/l4bench/bench/report"
)

// testdata/quick-run.json is a real quick-profile run of this machine (5
// rounds; results/baseline.json as it was on 2026-12-03), frozen here so
// that refreshing the baseline (make baseline) cannot move these tests.
func load(t *testing.T) *report.Results {
	t.Helper()
	r, err := report.Load("testdata/quick-run.json")
	require.NoError(t, err)
	return r
}

func scaled(r *report.Results, scenario, target, metric string, factor float64) *report.Results {
	c := *r
	c.Records = nil
	for _, rec := range r.Records {
		rec.Samples = append([]float64(nil), rec.Samples...)
		if rec.Scenario == scenario && rec.Target == target && rec.Metric == metric {
			for i := range rec.Samples {
				rec.Samples[i] *= factor
			}
		}
		c.Records = append(c.Records, rec)
	}
	return &c
}

func TestSameRunPasses(t *testing.T) {
	r := load(t)
	rows, err := Compare(r, r, Options{})
	require.NoError(t, err)
	assert.Empty(t, RegressedRows(rows))
	for _, row := range rows {
		assert.Equal(t, Same, row.Verdict, "%s/%s/%s", row.Scenario, row.Target, row.Metric)
	}
}

// TestPlantedRegressionIsCaught scales one design's throughput samples by
// 0.7: the gate must fail on exactly that row.
func TestPlantedRegressionIsCaught(t *testing.T) {
	base := load(t)
	cur := scaled(base, "tcp-stream-1", "l4proxy-buffered", "throughput", 0.7)
	rows, err := Compare(base, cur, Options{})
	require.NoError(t, err)
	bad := RegressedRows(rows)
	require.Len(t, bad, 1)
	assert.Equal(t, "tcp-stream-1", bad[0].Scenario)
	assert.Equal(t, "l4proxy-buffered", bad[0].Target)
	assert.Equal(t, "throughput", bad[0].Metric)
	assert.True(t, bad[0].Relative, "compared as a ratio to direct")
	assert.InDelta(t, -30, bad[0].Delta, 0.5)
	assert.Less(t, bad[0].P, 0.05)
}

func TestDirectionAndThreshold(t *testing.T) {
	base := load(t)
	tests := []struct {
		name           string
		metric         string
		factor         float64
		want           string
		maxRegressionP float64
	}{
		{"throughput up is an improvement", "throughput", 1.3, Improved, 15},
		{"throughput down within the allowance", "throughput", 0.8, Within, 0},
		{"cpu per GiB far up is a regression", "cpu_per_gib", 1.8, Regressed, 0},
		{"cpu per GiB has twice the allowance (absolute row)", "cpu_per_gib", 1.4, Within, 0},
		{"cpu per GiB down is an improvement", "cpu_per_gib", 0.6, Improved, 0},
		{"a larger allowance tolerates it", "cpu_per_gib", 1.8, Within, 45},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := scaled(base, "tcp-stream-1", "l4proxy-splice", tt.metric, tt.factor)
			rows, err := Compare(base, cur, Options{MaxRegression: tt.maxRegressionP})
			require.NoError(t, err)
			for _, r := range rows {
				if r.Scenario == "tcp-stream-1" && r.Target == "l4proxy-splice" && r.Metric == tt.metric {
					assert.Equal(t, tt.want, r.Verdict)
					return
				}
			}
			t.Fatal("row not compared")
		})
	}
}

func TestTailsAreShownNotGated(t *testing.T) {
	for _, tt := range []struct{ scenario, metric string }{
		{"tcp-rr", "latency_p99"},
		// The connect's own tail: one A/A run moved it by 26.7% on
		// 2026-12-06, as noisy as any p99.
		{"tcp-crr", "connect_p99"},
	} {
		t.Run(tt.metric, func(t *testing.T) {
			base := load(t)
			cur := scaled(base, tt.scenario, "l4proxy-splice", tt.metric, 3)
			rows, err := Compare(base, cur, Options{})
			require.NoError(t, err)
			assert.Empty(t, RegressedRows(rows), "a tail is not gated by default")
			rows, err = Compare(base, cur, Options{GateTails: true})
			require.NoError(t, err)
			require.Len(t, RegressedRows(rows), 1)
			assert.Equal(t, tt.metric, RegressedRows(rows)[0].Metric)
		})
	}
}

func TestSlowerMachineDoesNotFail(t *testing.T) {
	// Everything, direct included, 40% slower: ratios are unchanged.
	base := load(t)
	cur := *base
	cur.Records = nil
	for _, rec := range base.Records {
		rec.Samples = append([]float64(nil), rec.Samples...)
		if rec.Metric == "throughput" {
			for i := range rec.Samples {
				rec.Samples[i] *= 0.6
			}
		}
		cur.Records = append(cur.Records, rec)
	}
	rows, err := Compare(base, &cur, Options{})
	require.NoError(t, err)
	assert.Empty(t, RegressedRows(rows))
}

func TestNothingInCommon(t *testing.T) {
	base := load(t)
	other := &report.Results{Schema: report.Schema, Records: []report.Record{{Scenario: "x", Target: "y", Metric: "throughput", Samples: []float64{1}}}}
	_, err := Compare(base, other, Options{})
	assert.ErrorIs(t, err, ErrNoCommonRows)
	other.Schema = "l4bench/results/v0"
	_, err = Compare(base, other, Options{})
	assert.ErrorContains(t, err, "schemas differ")
}

func TestFormats(t *testing.T) {
	base := load(t)
	var buf bytes.Buffer
	same, err := Compare(base, base, Options{})
	require.NoError(t, err)
	WriteBenchstat(&buf, same)
	out := buf.String()
	assert.Contains(t, out, "run: baseline\n")
	assert.Contains(t, out, "run: current\n")
	// The tested values: the ratio to direct, not the raw throughput.
	assert.Contains(t, out, "BenchmarkTcpStream1/target=l4proxy-splice/metric=throughput 1 0.")
	assert.Contains(t, out, " x-direct\n")
	assert.Equal(t, 2*countValues(same), strings.Count(out, "\nBenchmark"))

	buf.Reset()
	require.NoError(t, WriteGitHubActionBenchmark(&buf, base, "higher"))
	assert.Contains(t, buf.String(), `"name": "tcp-stream-1 l4proxy-splice throughput"`)
	assert.NotContains(t, buf.String(), "cpu_per_gib")

	buf.Reset()
	rows, err := Compare(base, scaled(base, "tcp-stream-1", "l4proxy-pooled", "throughput", 0.5), Options{})
	require.NoError(t, err)
	WriteText(&buf, rows, Options{})
	assert.Contains(t, buf.String(), "tcp-stream-1 / l4proxy-pooled / throughput")
	assert.Contains(t, buf.String(), "REGRESSION")
	assert.Contains(t, buf.String(), "1 failing row(s)")
}

func countValues(rows []Row) int {
	n := 0
	for _, r := range rows {
		n += len(r.New)
	}
	return n
}

// TestRatiosPairByRound: a design that lost its second sample must not be
// divided by direct's second round from then on.
func TestRatiosPairByRound(t *testing.T) {
	direct := &report.Record{Samples: []float64{100, 50, 100}, Rounds: []int{1, 2, 3}}
	tests := []struct {
		name string
		rec  report.Record
		want []float64
	}{
		{"every round", report.Record{Samples: []float64{50, 25, 50}, Rounds: []int{1, 2, 3}}, []float64{0.5, 0.5, 0.5}},
		{"round 2 missing", report.Record{Samples: []float64{50, 50}, Rounds: []int{1, 3}}, []float64{0.5, 0.5}},
		{"no rounds: by position", report.Record{Samples: []float64{50, 25}}, []float64{0.5, 0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, ratios(&tt.rec, direct))
		})
	}
}

// A crash must not pass: a design whose rows are gone, or that left fewer
// samples than the run asked for, fails the gate, named.
func TestCrashFailsTheGate(t *testing.T) {
	base := load(t)
	edit := func(f func(rec *report.Record) bool) *report.Results {
		c := *base
		c.Records = nil
		for _, rec := range base.Records {
			rec.Samples = append([]float64(nil), rec.Samples...)
			rec.Rounds = append([]int(nil), rec.Rounds...)
			if f(&rec) {
				c.Records = append(c.Records, rec)
			}
		}
		return &c
	}
	died := func(target string, kept int) func(rec *report.Record) bool {
		return func(rec *report.Record) bool {
			if rec.Target == target {
				rec.Samples = rec.Samples[:min(kept, len(rec.Samples))]
				if len(rec.Rounds) > kept {
					rec.Rounds = rec.Rounds[:kept]
				}
			}
			return kept > 0 || rec.Target != target
		}
	}
	tests := []struct {
		name    string
		current *report.Results
		verdict string
		target  string
	}{
		{"never started", edit(died("l4proxy-splice", 0)), Missing, "l4proxy-splice"},
		{"died after round 1", edit(died("l4proxy-pooled", 1)), TooFew, "l4proxy-pooled"},
		{"direct lost a round", edit(died("direct", base.Settings.Count-1)), TooFew, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.verdict == Missing {
				tt.current.Failures = []report.Failure{{Target: "l4proxy-splice", Why: "failed to start: bad config"}}
			}
			rows, err := Compare(base, tt.current, Options{})
			require.NoError(t, err)
			bad := slices.DeleteFunc(RegressedRows(rows), func(r Row) bool { return r.Verdict == Failed })
			require.NotEmpty(t, bad)
			for _, r := range bad {
				assert.Equal(t, tt.verdict, r.Verdict, "%s/%s/%s", r.Scenario, r.Target, r.Metric)
				if tt.target != "" {
					assert.Equal(t, tt.target, r.Target)
				}
			}
			if tt.verdict == Missing {
				assert.Contains(t, bad[0].Note, "failed to start: bad config", "says why it is missing")
			} else {
				assert.Contains(t, bad[0].Note, "samples asked for")
			}
			var buf bytes.Buffer
			WriteText(&buf, rows, Options{})
			assert.Contains(t, buf.String(), "failing row(s)")
		})
	}
}
