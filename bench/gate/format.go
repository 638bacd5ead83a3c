package gate

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/l4bench/l4bench/bench/report"
)

// WriteText prints a benchstat-like table: old and new centers (medians),
// the change, the p-value and the verdict of every row.
func WriteText(w io.Writer, rows []Row, opts Options) {
	fmt.Fprintf(w, "%-44s %12s %12s %9s %8s  %s\n", "scenario / design / metric", "baseline", "current", "delta", "p", "verdict")
	for _, r := range rows {
		name := fmt.Sprintf("%s / %s / %s", r.Scenario, r.Target, r.Metric)
		unit := ""
		if r.Relative {
			unit = "x"
		}
		note := ""
		if !r.Gated {
			note = " (not gated)"
		}
		if r.Note != "" {
			note += " (" + r.Note + ")"
		}
		fmt.Fprintf(w, "%-44s %11.4g%s %11.4g%s %+8.1f%% %8.3f  %s%s\n", name, r.OldCenter, pad(unit), r.NewCenter, pad(unit), r.Delta, r.P, r.Verdict, note)
	}
	bad := RegressedRows(rows)
	fmt.Fprintf(w, "\n%d rows compared (x: ratio to direct in the same round), alpha %.2f, allowed regression %.0f%% (%.0f%% for absolute rows; tail latencies not gated unless --gate-tails): ", len(rows), opts.alpha(), opts.maxRegression(), 2*opts.maxRegression())
	if len(bad) == 0 {
		fmt.Fprintln(w, "no regression")
		return
	}
	fmt.Fprintf(w, "%d regression(s)\n", len(bad))
}

func pad(u string) string {
	if u == "" {
		return " "
	}
	return u
}

var nonIdent = regexp.MustCompile(`[^A-Za-z0-9]+`)

// WriteBenchstat writes both runs as Go benchmark lines, labelled with a
// "run:" key, so that `benchstat -col run FILE` compares them.
func WriteBenchstat(w io.Writer, baseline, current *report.Results) {
	fmt.Fprintln(w, "goos: linux")
	for _, part := range []struct {
		name string
		r    *report.Results
	}{{"baseline", baseline}, {"current", current}} {
		fmt.Fprintf(w, "run: %s\n", part.name)
		for _, rec := range part.r.Records {
			name := "Benchmark" + camel(rec.Scenario) + "/target=" + rec.Target + "/metric=" + rec.Metric
			unit := strings.ReplaceAll(rec.Unit, " ", "")
			for _, v := range rec.Samples {
				fmt.Fprintf(w, "%s 1 %g %s\n", name, v, unit)
			}
		}
	}
}

func camel(s string) string {
	var b strings.Builder
	for _, p := range nonIdent.Split(s, -1) {
		if p != "" {
			b.WriteString(strings.ToUpper(p[:1]) + p[1:])
		}
	}
	return b.String()
}

// BenchmarkEntry is one entry of github-action-benchmark's custom format.
type BenchmarkEntry struct {
	Name  string  `json:"name"`
	Unit  string  `json:"unit"`
	Value float64 `json:"value"`
	Range string  `json:"range,omitempty"`
	Extra string  `json:"extra,omitempty"`
}

// WriteGitHubActionBenchmark writes the current run's medians whose
// direction is better (higher or lower) as the JSON array that
// github-action-benchmark reads with tool customBiggerIsBetter (higher)
// or customSmallerIsBetter (lower).
func WriteGitHubActionBenchmark(w io.Writer, current *report.Results, better string) error {
	entries := []BenchmarkEntry{}
	for _, rec := range current.Records {
		if rec.Better != better {
			continue
		}
		lo, hi := minMax(rec.Samples)
		entries = append(entries, BenchmarkEntry{
			Name:  rec.Scenario + " " + rec.Target + " " + rec.Metric,
			Unit:  rec.Unit,
			Value: rec.Median,
			Range: fmt.Sprintf("%g..%g", lo, hi),
			Extra: fmt.Sprintf("%d samples, profile %s", len(rec.Samples), current.Profile),
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(entries)
}

func minMax(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}
