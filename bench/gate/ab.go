package gate

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/l4bench/l4bench/bench/report"
	"github.com/l4bench/l4bench/bench/stats"
)

// CompareAB compares two builds measured in one run (l4bench run
// --l4proxy-bin BASE=… --l4proxy-bin HEAD=…): every row of a target
// X@head against the row of X@base, paired by round. Both builds met the
// same machine at the same moments, so the machine's drift over a run
// cancels out in each round's difference, and no stored baseline is
// needed.
//
// A row's change is the median over the rounds of (head − base) / |median
// of base|, in percent. It regresses when a one-sided Wilcoxon
// signed-rank test finds the differences worse with p ≤ alpha AND the
// change is worse than the metric's allowance (Options.Allowances, else
// MaxRegression). Rows short of the rounds the run asked for, or present
// for one build only, fail.
func CompareAB(current *report.Results, base, head string, opts Options) ([]Row, error) {
	if base == "" || head == "" || base == head {
		return nil, fmt.Errorf("--ab %s,%s: want two different build names, BASE,HEAD", base, head)
	}
	asked := current.Settings.Count
	var rows []Row
	seen := map[string]bool{}
	for _, rec := range current.Records {
		name, build, ok := strings.Cut(rec.Target, "@")
		if !ok || (build != base && build != head) {
			continue
		}
		key := rec.Scenario + "\x00" + name + "\x00" + rec.Metric
		if seen[key] {
			continue
		}
		seen[key] = true
		row := Row{Scenario: rec.Scenario, Target: name + "@" + head, Metric: rec.Metric, Better: rec.Better,
			Gated: gatedRow(report.Record{Target: name, Metric: rec.Metric}, opts), Paired: true}
		b := current.Find(rec.Scenario, name+"@"+base, rec.Metric)
		h := current.Find(rec.Scenario, name+"@"+head, rec.Metric)
		if b == nil || h == nil {
			missing := name + "@" + head
			if h != nil {
				missing = name + "@" + base
			}
			row.Verdict, row.Note = Missing, "no row for "+missing
			for _, f := range current.Failures {
				if f.Target == missing {
					row.Note += ": " + f.String()
					break
				}
			}
			if row.Gated && !slices.Contains(tails, rec.Metric) {
				rows = append(rows, row)
			}
			continue
		}
		row.Old, row.New = report.PairByRound(b, h)
		if asked > 0 && len(row.New) < asked && row.Gated && !slices.Contains(tails, rec.Metric) {
			row.Verdict = TooFew
			row.Note = fmt.Sprintf("%d rounds with both builds of the %d asked for", len(row.New), asked)
			rows = append(rows, row)
			continue
		}
		if len(row.New) == 0 {
			continue
		}
		row.OldCenter, row.NewCenter = stats.Median(row.Old), stats.Median(row.New)
		scale := math.Abs(row.OldCenter)
		ds := make([]float64, len(row.New))
		for i := range ds {
			if scale > 0 {
				ds[i] = (row.New[i] - row.Old[i]) / scale
			} else {
				ds[i] = row.New[i] - row.Old[i]
			}
		}
		row.Diffs = ds
		row.Delta = stats.Median(ds) * 100
		// Test in the worse direction: positive means worse.
		worse := make([]float64, len(ds))
		for i, d := range ds {
			worse[i] = d
			if rec.Better != "lower" {
				worse[i] = -d
			}
		}
		row.P = stats.SignedRankGreater(worse)
		better := make([]float64, len(ds))
		for i, d := range worse {
			better[i] = -d
		}
		pBetter := stats.SignedRankGreater(better)
		row.Allowance = opts.allowanceFor(row)
		switch {
		case row.P <= opts.alpha() && isWorse(row) && math.Abs(row.Delta) > row.Allowance && row.Gated:
			row.Verdict = Regressed
		case row.P <= opts.alpha() && isWorse(row):
			row.Verdict = Within
		case pBetter <= opts.alpha() && !isWorse(row) && row.Delta != 0:
			row.Verdict, row.P = Improved, pBetter
		default:
			row.Verdict = Same
			row.P = min(row.P, pBetter)
		}
		rows = append(rows, row)
	}
	rows = append(rows, failureRows(current, func(t string) bool { return strings.HasSuffix(t, "@"+head) })...)
	if len(rows) == 0 {
		return nil, fmt.Errorf("--ab %s,%s: no target named l4proxy-<strategy>@%s or @%s in this run (run it with --l4proxy-bin %s=PATH --l4proxy-bin %s=PATH)", base, head, base, head, base, head)
	}
	return rows, nil
}

// isWorse says whether a row's change goes the wrong way.
func isWorse(r Row) bool {
	if r.Better == "lower" {
		return r.Delta > 0
	}
	return r.Delta < 0
}
