package report

import (
	"fmt"
	"io"
	"slices"
	"sort"

	"github.com/l4bench/l4bench/bench/stats"
)

// SideBySide is one figure of two runs: the same scenario, design and
// metric measured on two paths (loopback and veth), two machines or two
// dates. Ratios to direct are each run's own, so that they compare even
// where the paths' raw speeds differ.
type SideBySide struct {
	Scenario, Target, Metric, Unit string
	A, B                           *Record
	// P is the Mann-Whitney U p-value of A's samples against B's.
	P float64
	// VsDirectA and VsDirectB are the design's ratio to direct in each
	// run ("-" for direct itself or when a run lacks direct).
	VsDirectA, VsDirectB string
}

// Label names a run for a side-by-side view: its path and MTU, and its
// start.
func (r *Results) Label() string {
	path := r.Host.Net
	if path == "" {
		path = "loopback"
	}
	if r.Host.MTU > 0 {
		path = fmt.Sprintf("%s MTU %d", path, r.Host.MTU)
	}
	if r.Host.Rate != "" {
		path += " at " + r.Host.Rate
	}
	return fmt.Sprintf("%s, %s", path, r.Started.Format("2006-01-02 15:04"))
}

// Compare pairs every record present in both runs (informational metrics
// left out), in scenario, metric and design order; scenarios, when given,
// keeps only those.
func Compare(a, b *Results, scenarios []string, order []string) []SideBySide {
	var out []SideBySide
	for _, ra := range a.Records {
		if slices.Contains(Informational, ra.Metric) || ra.Target == "direct-iperf3" || len(scenarios) > 0 && !slices.Contains(scenarios, ra.Scenario) {
			continue
		}
		rb := b.Find(ra.Scenario, ra.Target, ra.Metric)
		if rb == nil {
			continue
		}
		ra := ra
		out = append(out, SideBySide{Scenario: ra.Scenario, Target: ra.Target, Metric: ra.Metric, Unit: ra.Unit, A: &ra, B: rb,
			P:         stats.P(ra.Samples, rb.Samples),
			VsDirectA: vsDirectRatio(&ra, a.Find(ra.Scenario, Direct, ra.Metric)),
			VsDirectB: vsDirectRatio(rb, b.Find(ra.Scenario, Direct, ra.Metric))})
	}
	rank := func(t string) int {
		if i := slices.Index(order, t); i >= 0 {
			return i
		}
		return len(order)
	}
	sort.SliceStable(out, func(i, j int) bool {
		x, y := out[i], out[j]
		if x.Scenario != y.Scenario {
			return x.Scenario < y.Scenario
		}
		if x.Metric != y.Metric {
			return x.Metric < y.Metric
		}
		return rank(x.Target) < rank(y.Target)
	})
	return out
}

func vsDirectRatio(rec, direct *Record) string {
	if direct == nil || direct.Median == 0 || rec.Target == Direct {
		return "-"
	}
	return fmt.Sprintf("%.2fx", rec.Median/direct.Median)
}

// PrintComparison writes the side-by-side table as Markdown: each figure
// in both runs, B over A, and whether the change is significant.
func PrintComparison(w io.Writer, a, b *Results, rows []SideBySide) {
	fmt.Fprintf(w, "A: %s\n\nB: %s\n\n", a.Label(), b.Label())
	fmt.Fprintln(w, "Medians of each run's rounds. B/A is significant when p ≤ 0.05 (Mann-Whitney U over the two runs' samples); otherwise it is a tie within noise. \"vs direct\" is each run's own ratio to no proxy, which compares across paths even where their raw speeds differ.")
	scenario, metric := "", ""
	var format func(float64) string
	for i, r := range rows {
		if r.Scenario != scenario || r.Metric != metric {
			scenario, metric = r.Scenario, r.Metric
			// One unit for the whole table: every median of this metric.
			var values []float64
			for _, o := range rows[i:] {
				if o.Scenario == scenario && o.Metric == metric {
					values = append(values, o.A.Median, o.B.Median)
				}
			}
			format = ColumnFormat(r.Unit, values)
			fmt.Fprintf(w, "\n%s · %s (%s, %s is better)\n\n", r.Scenario, r.Metric, r.Unit, r.A.Better)
			fmt.Fprintln(w, "| design | A | B | B/A | p | A vs direct | B vs direct |")
			fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
		}
		change := "-"
		if r.A.Median != 0 {
			change = fmt.Sprintf("%.2fx", r.B.Median/r.A.Median)
			if r.P > stats.Alpha {
				change = "tie (" + change + ")"
			} else {
				change = "**" + change + "**"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.3f | %s | %s |\n", r.Target, format(r.A.Median), format(r.B.Median), change, r.P, r.VsDirectA, r.VsDirectB)
	}
}
