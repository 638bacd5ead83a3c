// Package gate compares a run with a baseline and says whether anything
// regressed, with statistics fit for a noisy machine:
//
//	rows, err := gate.Compare(baseline, current, gate.Options{MaxRegression: 15})
//	if len(gate.RegressedRows(rows)) > 0 { os.Exit(1) }
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
	"github.com/l4bench/l4bench/bench/stats"
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
	// Allowances are per-metric allowances in percent, keyed by
	// "scenario/metric" or by "metric", measured from the noise of A/A
	// runs (see Calibrate). A metric without one gets MaxRegression.
	Allowances map[string]float64
}

// allowanceFor is the tolerated regression of a row, in percent: the
// calibrated one of its scenario and metric, else of its metric, else the
// default.
func (o Options) allowanceFor(r Row) float64 {
	if a, ok := o.Allowances[r.Scenario+"/"+r.Metric]; ok {
		return a
	}
	if a, ok := o.Allowances[r.Metric]; ok {
		return a
	}
	return o.allowance(r)
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
	if r.Relative || r.Paired {
		return o.maxRegression()
	}
	return 2 * o.maxRegression()
}

// tails are the latency metrics that are not gated unless asked: a
// 99th percentile of a few rounds moves as much between identical builds
// as a regression would (tcp-crr's connect_p99 by 26.7% in an A/A run).
var tails = []string{"latency_p99", "latency_p999", "latency_p9999", "connect_p99"}

// informational metrics are shown, never gated: the client's own timing,
// and CPUs kept busy (a faster design may rightly use more per second).
var informational = []string{"send_lateness_p50", "send_lateness_p99", "cpus_used"}

// notGated are targets that are not designs: iperf3's cross-check.
var notGated = []string{report.Direct, "direct-iperf3"}

// Verdicts of a row.
const (
	Same      = "~"          // not significant
	Improved  = "improved"   // significant, better
	Within    = "within"     // significant, worse, but within the allowed regression
	Regressed = "REGRESSION" // significant and worse than allowed
	Missing   = "MISSING"    // gated in the baseline, absent from the run
	TooFew    = "TOO FEW"    // fewer samples than the run asked for
	Failed    = "FAILED"     // the run says the design failed (results' failures)
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
	// Paired rows compare two builds of one run round by round (--ab):
	// Old and New are then the base's and head's samples of the same
	// rounds, Diffs each round's (New − Old) over base's median (the
	// difference itself when that median is 0), and Delta the median of
	// Diffs in percent.
	Paired bool
	Diffs  []float64
	// Allowance is the change in the worse direction this row tolerates,
	// in percent.
	Allowance float64
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
		if cur.Target == report.Direct {
			continue
		}
		gated := gatedRow(cur, opts)
		old := baseline.Find(cur.Scenario, cur.Target, cur.Metric)
		if old == nil {
			continue
		}
		row := Row{Scenario: cur.Scenario, Target: cur.Target, Metric: cur.Metric, Better: cur.Better, Gated: gated}
		asked := current.Settings.Count
		oldD, newD := baseline.Find(cur.Scenario, report.Direct, cur.Metric), current.Find(cur.Scenario, report.Direct, cur.Metric)
		if oldD != nil && newD != nil {
			row.Relative = true
			row.Old, row.New = ratios(old, oldD), ratios(&cur, newD)
		} else {
			row.Old, row.New = clean(old.Samples), clean(cur.Samples)
		}
		// A design that died or lost a round leaves fewer samples; a
		// test on them could only say "no change", so the row fails.
		// Tail percentiles are recorded only in rounds with enough
		// requests beyond them, so only the others must be complete.
		if asked > 0 && len(row.New) < asked && gated && !slices.Contains(tails, cur.Metric) {
			row.Verdict = TooFew
			row.Note = fmt.Sprintf("%d of the %d samples asked for", len(row.New), asked)
			if row.Relative && len(clean(cur.Samples)) >= asked {
				row.Note += " paired with direct by round"
			}
			rows = append(rows, row)
			continue
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
		row.Allowance = opts.allowance(row)
		row.Verdict = verdict(row, opts)
		rows = append(rows, row)
	}
	compared := len(rows)
	// Every gated row of the baseline must be in the run: a design that
	// failed to start leaves no rows at all, and must not pass unseen.
	for _, old := range baseline.Records {
		if old.Target == report.Direct || !gatedRow(old, opts) || slices.Contains(tails, old.Metric) ||
			current.Find(old.Scenario, old.Target, old.Metric) != nil {
			continue
		}
		why := "in the baseline, not in this run"
		for _, f := range current.Failures {
			if f.Target == old.Target {
				why += ": " + f.String()
				break
			}
		}
		rows = append(rows, Row{Scenario: old.Scenario, Target: old.Target, Metric: old.Metric, Better: old.Better,
			Gated: true, Verdict: Missing, Note: why, OldCenter: old.Median})
	}
	rows = append(rows, failureRows(current, func(t string) bool { return !slices.Contains(notGated, t) })...)
	// Not even direct in common: the files are not two runs of one gate.
	if compared == 0 && !slices.ContainsFunc(current.Records, func(r report.Record) bool {
		return baseline.Find(r.Scenario, r.Target, r.Metric) != nil
	}) {
		return nil, ErrNoCommonRows
	}
	return rows, nil
}

// ChangeCI is the 95% confidence interval of a row's change in percent
// (benchmath's order-statistics interval; with few samples the range): of
// the per-round differences for paired rows, else of the current values
// against the baseline's center. NaN when there is nothing to show.
func (r Row) ChangeCI() (lo, hi float64) {
	if len(r.New) == 0 || r.OldCenter == 0 || (r.Paired && len(r.Old) != len(r.New)) {
		return math.NaN(), math.NaN()
	}
	scale := math.Abs(r.OldCenter)
	xs := make([]float64, len(r.New))
	for i, v := range r.New {
		if r.Paired {
			xs[i] = (v - r.Old[i]) / scale * 100
		} else {
			xs[i] = (v/r.OldCenter - 1) * 100
		}
	}
	iv := stats.CI(xs)
	return iv.Lo, iv.Hi
}

// gatedRow says whether a record's row is gated (not only shown).
func gatedRow(rec report.Record, opts Options) bool {
	return !slices.Contains(notGated, rec.Target) && (opts.GateTails || !slices.Contains(tails, rec.Metric)) &&
		!slices.Contains(informational, rec.Metric)
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

// RegressedRows returns the rows that fail the gate: regressions, and
// gated rows missing from the run or short of samples.
func RegressedRows(rows []Row) []Row {
	var out []Row
	for _, r := range rows {
		if r.Fails() {
			out = append(out, r)
		}
	}
	return out
}

// Fails says whether a row fails the gate.
func (r Row) Fails() bool {
	return r.Verdict == Regressed || r.Verdict == Missing || r.Verdict == TooFew || r.Verdict == Failed
}

// failureRows turns the run's failures of the designs the gate judges
// (those accepted by judged) into failing rows: a design that stopped
// splicing, whose traced run broke, or that died, fails the gate even when
// no timed row shows it.
func failureRows(current *report.Results, judged func(target string) bool) []Row {
	var rows []Row
	for _, f := range current.Failures {
		if judged(f.Target) {
			rows = append(rows, Row{Scenario: f.Scenario, Target: f.Target, Metric: "-", Gated: true, Verdict: Failed, Note: f.Why})
		}
	}
	return rows
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
