// Package gate compares a run with a baseline and says whether anything
// regressed, with statistics fit for a noisy machine:
//
//	rows, err := gate.Compare(baseline, current, gate.Options{MaxRegression: 15})
//	if gate.Regressed(rows) { os.Exit(1) }
//
// Each (scenario, target, metric) in both runs is compared as a ratio to
// direct measured in the same round of the same run, so a slower machine
// does not fail the gate; metrics that direct lacks (CPU per GiB, memory
// per connection) are compared as they are. A row regresses only when the
// change is statistically significant (Mann-Whitney U test on the samples,
// benchstat's statistics from golang.org/x/perf/benchmath) AND worse than
// the allowed regression.
package gate

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"golang.org/x/perf/benchmath"

	"github.com/l4bench/l4bench/bench/report"
)

// DefaultMaxRegression is the default allowance, in percent, tuned on this
// 2-core VM: in 10 unchanged quick runs against a 15-round baseline, the
// worst change of a gated ratio-to-direct row was 26.4% (tcp-rr p50) and of
// an absolute row 33.8% (CPU per GiB), while tail latencies moved by up to
// 107%; a planted 30% throughput loss must still fail.
const DefaultMaxRegression = 28

// Options tune the gate. The zero value is the default.
type Options struct {
	// Alpha is the significance level (default 0.05).
	Alpha float64
	// MaxRegression is the largest change in the worse direction that is
	// tolerated for rows compared as ratios to direct, in percent (default
	// DefaultMaxRegression). Rows compared as absolute values (no direct
	// figure: CPU per GiB, memory per connection) move with the machine and
	// get twice the allowance.
	MaxRegression float64
	// GateTails also gates latency percentiles beyond p50 (p99, p99.9,
	// p99.99), which rest on a handful of requests in short runs and are
	// otherwise shown but not gated.
	GateTails bool
}

func (o Options) alpha() float64 {
	if o.Alpha <= 0 {
		return 0.05
	}
	return o.Alpha
}

func (o Options) maxRegression() float64 {
	if o.MaxRegression <= 0 {
		return DefaultMaxRegression
	}
	return o.MaxRegression
}

// allowance is the tolerated regression of a row, in percent.
func (o Options) allowance(r Row) float64 {
	if r.Relative {
		return o.maxRegression()
	}
	return 2 * o.maxRegression()
}

// tails are the latency metrics that are not gated unless asked.
var tails = []string{"latency_p99", "latency_p999", "latency_p9999"}

// informational metrics are shown, never gated: the client's own timing,
// and CPUs kept busy (a faster design may rightly use more per second).
var informational = []string{"send_lateness_p50", "send_lateness_p99", "cpus_used"}

// notGated are targets that are not designs: iperf3's cross-check.
var notGated = []string{"direct", "direct-iperf3"}

// Verdicts of a row.
const (
	Same      = "~"          // not significant
	Improved  = "improved"   // significant, better
	Within    = "within"     // significant, worse, but within the allowed regression
	Regressed = "REGRESSION" // significant and worse than allowed
)

// Row is one compared (scenario, target, metric).
type Row struct {
	Scenario, Target, Metric string
	Better                   string
	Relative                 bool // values are ratios to direct
	Old, New                 []float64
	OldCenter, NewCenter     float64
	Delta                    float64 // percent change of the medians
	P                        float64
	Verdict                  string
	Note                     string // e.g. too few samples for significance
	Gated                    bool   // false: shown for information only
}

// ErrNoCommonRows is returned when the runs share no comparable row.
var ErrNoCommonRows = errors.New("no (scenario, target, metric) in common")

// Compare compares current against baseline.
func Compare(baseline, current *report.Results, opts Options) ([]Row, error) {
	if baseline.Schema != current.Schema {
		return nil, fmt.Errorf("schemas differ: baseline %q, current %q", baseline.Schema, current.Schema)
	}
	thresholds := benchmath.Thresholds{CompareAlpha: opts.alpha()}
	var rows []Row
	for _, cur := range current.Records {
		if cur.Target == "direct" {
			continue
		}
		gated := !slices.Contains(notGated, cur.Target) && (opts.GateTails || !slices.Contains(tails, cur.Metric)) &&
			!slices.Contains(informational, cur.Metric)
		old := baseline.Find(cur.Scenario, cur.Target, cur.Metric)
		if old == nil {
			continue
		}
		row := Row{Scenario: cur.Scenario, Target: cur.Target, Metric: cur.Metric, Better: cur.Better, Gated: gated}
		oldD, newD := baseline.Find(cur.Scenario, "direct", cur.Metric), current.Find(cur.Scenario, "direct", cur.Metric)
		if oldD != nil && newD != nil {
			row.Relative = true
			row.Old, row.New = ratios(old, oldD), ratios(&cur, newD)
		} else {
			row.Old, row.New = clean(old.Samples), clean(cur.Samples)
		}
		if len(row.Old) == 0 || len(row.New) == 0 {
			continue
		}
		s1 := benchmath.NewSample(append([]float64(nil), row.Old...), &thresholds)
		s2 := benchmath.NewSample(append([]float64(nil), row.New...), &thresholds)
		row.OldCenter = benchmath.AssumeNothing.Summary(s1, 0.95).Center
		row.NewCenter = benchmath.AssumeNothing.Summary(s2, 0.95).Center
		cmp := benchmath.AssumeNothing.Compare(s1, s2)
		row.P = cmp.P
		if len(cmp.Warnings) > 0 {
			row.Note = cmp.Warnings[0].Error()
		}
		if row.OldCenter != 0 {
			row.Delta = (row.NewCenter/row.OldCenter - 1) * 100
		}
		row.Verdict = verdict(row, opts)
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil, ErrNoCommonRows
	}
	return rows, nil
}

func verdict(r Row, opts Options) string {
	if r.P > opts.alpha() || r.Delta == 0 || math.IsNaN(r.Delta) {
		return Same
	}
	worse := r.Delta < 0
	if r.Better == "lower" {
		worse = r.Delta > 0
	}
	switch {
	case !worse:
		return Improved
	case math.Abs(r.Delta) > opts.allowance(r) && r.Gated:
		return Regressed
	default:
		return Within
	}
}

// ratios pairs samples by round: the design's value over direct's in the
// same round. Rounds missing on either side are dropped.
func ratios(rec, direct *report.Record) []float64 {
	d := direct.ByRound()
	var out []float64
	for i, x := range rec.Samples {
		round := i + 1
		if len(rec.Rounds) == len(rec.Samples) {
			round = rec.Rounds[i]
		}
		if y, ok := d[round]; ok && y != 0 && !math.IsNaN(x) && !math.IsNaN(y) {
			out = append(out, x/y)
		}
	}
	return out
}

func clean(xs []float64) []float64 {
	return slices.DeleteFunc(append([]float64(nil), xs...), math.IsNaN)
}

// RegressedRows returns the rows that fail the gate.
func RegressedRows(rows []Row) []Row {
	var out []Row
	for _, r := range rows {
		if r.Verdict == Regressed {
			out = append(out, r)
		}
	}
	return out
}

// HostDifferences lists what differs between the two runs' hosts.
func HostDifferences(a, b *report.Results) []string {
	var out []string
	diff := func(what, x, y string) {
		if x != y {
			out = append(out, fmt.Sprintf("%s: %q vs %q", what, x, y))
		}
	}
	diff("kernel", a.Host.Kernel, b.Host.Kernel)
	diff("cpus", fmt.Sprint(a.Host.CPUs), fmt.Sprint(b.Host.CPUs))
	diff("cpu model", a.Host.CPUModel, b.Host.CPUModel)
	diff("go", a.Host.Go, b.Host.Go)
	diff("profile", a.Profile, b.Profile)
	return out
}
