package report

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/l4bench/l4bench/bench/stats"
)

// Summary writes one table per scenario and metric: each design's median,
// 95% confidence interval (the range, marked †, with too few samples) and
// ratio to direct; the best design, when it is best with significance
// (Best), marked bold with ANSI when ansi, else with a trailing *.
func (r *Results) Summary(w io.Writer, targetOrder []string, ansi bool) {
	type key struct{ scenario, metric string }
	var keys []key
	seen := map[key]bool{}
	for _, rec := range r.Records {
		k := key{rec.Scenario, rec.Metric}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	rank := func(t string) int {
		if i := slices.Index(targetOrder, t); i >= 0 {
			return i
		}
		return len(targetOrder)
	}
	for _, k := range keys {
		var recs []Record
		for _, rec := range r.Records {
			if rec.Scenario == k.scenario && rec.Metric == k.metric {
				recs = append(recs, rec)
			}
		}
		slices.SortStableFunc(recs, func(a, b Record) int { return rank(a.Target) - rank(b.Target) })
		best := Best(recs)
		direct := r.Find(k.scenario, Direct, k.metric)
		fmt.Fprintf(w, "\n%s · %s (%s, %s is better)\n", k.scenario, k.metric, recs[0].Unit, recs[0].Better)
		fmt.Fprintf(w, "  %-22s %14s %25s %10s\n", "design", "median", "95% CI", "vs direct")
		for _, rec := range recs {
			ratio := VsDirect(&rec, direct)
			val := FormatValue(rec.Median, rec.Unit)
			mark := " "
			if rec.Target == best {
				if ansi {
					val = "\x1b[1m" + val + "\x1b[0m"
					// keep the column aligned despite the escape codes
					val = strings.Repeat(" ", max(0, 14-len(FormatValue(rec.Median, rec.Unit)))) + val
				} else {
					mark = "*"
				}
			}
			iv := stats.CI(rec.Samples)
			ci := FormatValue(iv.Lo, rec.Unit) + " – " + FormatValue(iv.Hi, rec.Unit)
			if iv.Warning != "" {
				ci += " †"
			}
			fmt.Fprintf(w, "  %-22s %14s%s %25s %10s\n", rec.Target, val, mark, ci, ratio)
		}
	}
}

func better(a, b Record) bool {
	if a.Better == "lower" {
		return a.Median < b.Median
	}
	return a.Median > b.Median
}

// FormatValue prints a value with a readable unit.
func FormatValue(v float64, unit string) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	switch unit {
	case "bytes/s":
		return humanBytes(v) + "/s"
	case "fraction":
		return fmt.Sprintf("%.2f%%", v*100)
	case "us":
		return fmt.Sprintf("%.0f µs", v)
	case "s/GiB":
		return fmt.Sprintf("%.3f s/GiB", v)
	case "KiB":
		return fmt.Sprintf("%.1f KiB", v)
	case "fds":
		return fmt.Sprintf("%.2f", v)
	case "threads":
		return fmt.Sprintf("%.0f", v)
	default:
		if v >= 10000 {
			return fmt.Sprintf("%.0f %s", v, unit)
		}
		return fmt.Sprintf("%.1f %s", v, unit)
	}
}

// ColumnFormat formats every value of one table column in one unit, the
// one that suits the column's largest value: no "1.05 GiB/s" above
// "1021.04 MiB/s", no "125464.0 KiB" beside "3.3 KiB".
func ColumnFormat(unit string, values []float64) func(float64) string {
	top := 0.0
	for _, v := range values {
		if !math.IsNaN(v) {
			top = max(top, math.Abs(v))
		}
	}
	scaled := func(div float64, name string, digits int) func(float64) string {
		return func(v float64) string {
			if math.IsNaN(v) {
				return "n/a"
			}
			return fmt.Sprintf("%.*f %s", digits, v/div, name)
		}
	}
	switch unit {
	case "bytes/s":
		i, div := 0, 1.0
		names := []string{"B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s"}
		for top/div >= 1024 && i < len(names)-1 {
			div *= 1024
			i++
		}
		return scaled(div, names[i], 2)
	case "KiB":
		if top >= 10*1024 {
			return scaled(1024, "MiB", 1)
		}
		return scaled(1, "KiB", 1)
	}
	return func(v float64) string { return FormatValue(v, unit) }
}

func humanBytes(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.2f %s", v, units[i])
}
