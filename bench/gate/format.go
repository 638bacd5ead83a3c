package gate

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
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
		if r.Gated && r.Verdict != Missing && r.Verdict != Failed {
			note += fmt.Sprintf(" (allowed %.1f%%)", r.Allowance)
		}
		fmt.Fprintf(w, "%-44s %11.4g%s %11.4g%s %+8.1f%% %8.3f  %s%s\n", name, r.OldCenter, pad(unit), r.NewCenter, pad(unit), r.Delta, r.P, r.Verdict, note)
	}
	bad := RegressedRows(rows)
	if slices.ContainsFunc(rows, func(r Row) bool { return r.Paired }) {
		fmt.Fprintf(w, "\n%d rows compared, head against base paired by round (columns: each build's median; delta: the median of the rounds' differences), alpha %.2f (one-sided signed-rank), each metric's allowance from A/A runs, else %.0f%%; tail latencies not gated unless --gate-tails: ", len(rows), opts.alpha(), opts.maxRegression())
	} else {
		fmt.Fprintf(w, "\n%d rows compared (x: ratio to direct in the same round), alpha %.2f, allowed regression %.0f%% (%.0f%% for absolute rows; tail latencies not gated unless --gate-tails): ", len(rows), opts.alpha(), opts.maxRegression(), 2*opts.maxRegression())
	}
	if len(bad) == 0 {
		fmt.Fprintln(w, "no regression")
		return
	}
	fmt.Fprintf(w, "%d failing row(s)\n", len(bad))
}

func pad(u string) string {
	if u == "" {
		return " "
	}
	return u
}

var nonIdent = regexp.MustCompile(`[^A-Za-z0-9]+`)

// WriteBenchstat writes the values the gate tested as Go benchmark lines,
// labelled with a "run:" key, so that `benchstat -col run FILE` shows the
// same comparison: ratios to direct per round for ratio rows, each
// build's samples of the shared rounds for A/B rows, raw samples for the
// rest. Rows missing from a run have no lines.
func WriteBenchstat(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "goos: linux")
	for _, part := range []struct {
		name string
		vals func(Row) []float64
	}{{"baseline", func(r Row) []float64 { return r.Old }}, {"current", func(r Row) []float64 { return r.New }}} {
		fmt.Fprintf(w, "run: %s\n", part.name)
		for _, r := range rows {
			name := "Benchmark" + camel(r.Scenario) + "/target=" + r.Target + "/metric=" + r.Metric
			unit := "value"
			if r.Relative {
				unit = "x-direct"
			}
			for _, v := range part.vals(r) {
				fmt.Fprintf(w, "%s 1 %g %s\n", name, v, unit)
			}
		}
	}
}

// WriteMarkdown writes a table for a CI step summary: each row, its
// change with the 95% confidence interval of that change, p, the
// allowance and the verdict, failing rows first.
func WriteMarkdown(w io.Writer, rows []Row, opts Options) {
	bad := RegressedRows(rows)
	if len(bad) == 0 {
		fmt.Fprintf(w, "### l4bench gate: pass\n\n")
	} else {
		fmt.Fprintf(w, "### l4bench gate: FAIL, %d failing row(s)\n\n", len(bad))
	}
	fmt.Fprintf(w, "| scenario | design | metric | baseline | current | change | 95%% CI of change | p | allowed | verdict |\n")
	fmt.Fprintf(w, "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	ordered := append(append([]Row(nil), bad...), slices.DeleteFunc(append([]Row(nil), rows...), Row.Fails)...)
	for _, r := range ordered {
		verdict := r.Verdict
		if r.Fails() {
			verdict = "**" + verdict + "**"
		}
		if r.Note != "" {
			verdict += " (" + r.Note + ")"
		}
		if !r.Gated {
			verdict += " (not gated)"
		}
		lo, hi := r.ChangeCI()
		ci := "-"
		if !math.IsNaN(lo) {
			ci = fmt.Sprintf("%+.1f%% … %+.1f%%", lo, hi)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.4g | %.4g | %+.1f%% | %s | %.3f | %.0f%% | %s |\n",
			r.Scenario, r.Target, r.Metric, r.OldCenter, r.NewCenter, r.Delta, ci, r.P, r.Allowance, verdict)
	}
	fmt.Fprintf(w, "\nalpha %.2f; ratio rows are divided by direct in the same round; A/B rows pair both builds by round.\n", opts.alpha())
}

// JSONRow is one row of --format json.
type JSONRow struct {
	Scenario  string    `json:"scenario"`
	Target    string    `json:"target"`
	Metric    string    `json:"metric"`
	Better    string    `json:"better"`
	Kind      string    `json:"kind"` // ratio, paired or absolute
	Baseline  []float64 `json:"baseline"`
	Current   []float64 `json:"current"`
	Change    float64   `json:"change_pct"`
	ChangeLo  *float64  `json:"change_ci_lo_pct,omitempty"`
	ChangeHi  *float64  `json:"change_ci_hi_pct,omitempty"`
	P         float64   `json:"p"`
	Allowance float64   `json:"allowance_pct"`
	Gated     bool      `json:"gated"`
	Verdict   string    `json:"verdict"`
	Note      string    `json:"note,omitempty"`
}

// WriteJSON writes every row and the overall verdict as one JSON object.
func WriteJSON(w io.Writer, rows []Row) error {
	out := struct {
		Pass    bool      `json:"pass"`
		Failing int       `json:"failing"`
		Rows    []JSONRow `json:"rows"`
	}{Rows: []JSONRow{}}
	for _, r := range rows {
		kind := "absolute"
		if r.Relative {
			kind = "ratio"
		} else if r.Paired {
			kind = "paired"
		}
		j := JSONRow{Scenario: r.Scenario, Target: r.Target, Metric: r.Metric, Better: r.Better, Kind: kind,
			Baseline: orEmpty(r.Old), Current: orEmpty(r.New), Change: finite(r.Delta), P: finite(r.P), Allowance: r.Allowance,
			Gated: r.Gated, Verdict: r.Verdict, Note: r.Note}
		if lo, hi := r.ChangeCI(); !math.IsNaN(lo) {
			j.ChangeLo, j.ChangeHi = &lo, &hi
		}
		out.Rows = append(out.Rows, j)
	}
	out.Failing = len(RegressedRows(rows))
	out.Pass = out.Failing == 0
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func orEmpty(xs []float64) []float64 {
	if xs == nil {
		return []float64{}
	}
	return xs
}

func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
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
