package gate

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/l4bench/l4bench/bench/report"
)

// Plant returns a copy of an A/B run in which every head sample of one
// scenario's metric is pct percent worse: higher for a metric where lower
// is better, lower for one where higher is better. Planted into an A/A
// run, it is a regression of known size on top of the machine's real
// noise, which is how the gate's power is measured without building one
// regression per size.
func Plant(r *report.Results, head, scenario, metric string, pct float64) *report.Results {
	out := *r
	out.Records = make([]report.Record, len(r.Records))
	for i, rec := range r.Records {
		rec.Samples = slices.Clone(rec.Samples)
		if rec.Scenario == scenario && rec.Metric == metric && strings.HasSuffix(rec.Target, "@"+head) {
			f := 1 + pct/100
			if rec.Better != "lower" {
				f = 1 - pct/100
			}
			for j := range rec.Samples {
				rec.Samples[j] *= f
			}
		}
		out.Records[i] = rec
	}
	return &out
}

// Join makes one A/B run of several runs of the same plan: each record's
// samples one run after another, their rounds numbered on from the last
// run's. Rounds are paired within a run, so joining two 5-round A/A runs
// gives a 10-round A/A sample whose pairs are as real as in a 10-round
// run; what it does not show is any drift within a longer run, which the
// pairing cancels anyway. Every record must be in every run, except a
// tail percentile (never gated unless asked), which a run records only
// with enough requests beyond it: one missing from a run is left out.
func Join(runs []*report.Results) (*report.Results, error) {
	if len(runs) == 0 {
		return nil, fmt.Errorf("join: no runs")
	}
	out := *runs[0]
	out.Records, out.Failures = nil, nil
	out.Settings.Count = 0
	index := map[string]int{}
	var held []int // how many runs hold each record of out
	for n, r := range runs {
		offset := out.Settings.Count
		if r.Settings.Count <= 0 {
			return nil, fmt.Errorf("join: run %d does not say how many rounds it asked for", n+1)
		}
		out.Settings.Count += r.Settings.Count
		out.Failures = append(out.Failures, r.Failures...)
		for _, rec := range r.Records {
			key := rec.Scenario + "\x00" + rec.Target + "\x00" + rec.Metric
			i, ok := index[key]
			if !ok {
				i = len(out.Records)
				index[key] = i
				out.Records = append(out.Records, report.Record{Scenario: rec.Scenario, Target: rec.Target,
					Metric: rec.Metric, Unit: rec.Unit, Better: rec.Better})
				held = append(held, 0)
			}
			held[i]++
			to := &out.Records[i]
			for round, v := range rec.ByRound() {
				to.Samples = append(to.Samples, v)
				to.Rounds = append(to.Rounds, offset+round)
			}
		}
	}
	kept := out.Records[:0]
	for i, rec := range out.Records {
		switch n := held[i]; {
		case n == len(runs):
			kept = append(kept, rec)
		case !slices.Contains(tails, rec.Metric):
			return nil, fmt.Errorf("join: %s / %s / %s is in %d of the %d runs", rec.Scenario, rec.Target, rec.Metric, n, len(runs))
		}
	}
	out.Records = kept
	return &out, nil
}

// Detection is how small a regression of one scenario's metric the gate
// catches at a machine's noise.
type Detection struct {
	Key       string  // scenario/metric
	Better    string  // "higher" or "lower"
	Allowance float64 // percent
	Trials    int     // rows judged per planted size: runs × designs
	// Smallest is the smallest planted change, in percent, that failed at
	// least the asked share of the trials; NaN when none up to the
	// largest size tried did.
	Smallest float64
	// Caught10 is how many trials a 10% change failed.
	Caught10 int
}

// Detectable plants regressions of each size in sizes (ascending, in
// percent) into every gated metric of A/A runs, one metric at a time, and
// finds for each the smallest size the gate fails in at least share of
// the trials. The runs must be A/A: base and head the same build.
func Detectable(runs []*report.Results, base, head string, opts Options, sizes []float64, share float64) ([]Detection, error) {
	if len(runs) == 0 {
		return nil, fmt.Errorf("detectable: no runs")
	}
	rows, err := CompareAB(runs[0], base, head, opts)
	if err != nil {
		return nil, err
	}
	type metric struct{ scenario, name string }
	var metrics []metric
	seen := map[metric]bool{}
	higher := map[metric]bool{}
	for _, row := range rows {
		m := metric{row.Scenario, row.Metric}
		higher[m] = row.Better != "lower"
		if row.Gated && row.Verdict != Missing && row.Verdict != TooFew && row.Verdict != Failed && !seen[m] &&
			!slices.Contains(tails, row.Metric) {
			seen[m] = true
			metrics = append(metrics, m)
		}
	}
	var out []Detection
	for _, m := range metrics {
		d := Detection{Key: m.scenario + "/" + m.name, Better: "lower", Smallest: math.NaN()}
		if higher[m] {
			d.Better = "higher"
		}
		caught := func(pct float64) (hit, trials int, allowance float64, err error) {
			for _, r := range runs {
				rows, err := CompareAB(Plant(r, head, m.scenario, m.name, pct), base, head, opts)
				if err != nil {
					return 0, 0, 0, err
				}
				for _, row := range rows {
					if row.Scenario != m.scenario || row.Metric != m.name {
						continue
					}
					trials++
					allowance = row.Allowance
					if row.Fails() {
						hit++
					}
				}
			}
			return hit, trials, allowance, nil
		}
		hit, trials, allowance, err := caught(10)
		if err != nil {
			return nil, err
		}
		d.Caught10, d.Trials, d.Allowance = hit, trials, allowance
		for _, pct := range sizes {
			if higher[m] && pct >= 100 {
				break // a metric where higher is better cannot lose more than all of it
			}
			hit, trials, _, err := caught(pct)
			if err != nil {
				return nil, err
			}
			if trials > 0 && float64(hit) >= share*float64(trials) {
				d.Smallest = pct
				break
			}
		}
		out = append(out, d)
	}
	return out, nil
}
