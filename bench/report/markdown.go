package report

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/l4bench/l4bench/bench/stats"
)

// Markdown writes report.md: host and versions, fairness settings, what
// the run shows (sentences derived from its numbers), one table per
// scenario and metric, the syscall verdicts, and the plots.
func (r *Results) Markdown(w io.Writer, order []string, plots []Plot) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# l4bench report\n\n")
	p("Profile `%s`, started %s", r.Profile, r.Started.Format("2006-01-02 15:04:05 UTC"))
	if !r.Finished.IsZero() {
		p(", took %s", r.Finished.Sub(r.Started).Round(1e9))
	}
	p(".")
	if len(r.Command) > 0 {
		p(" Command: `%s`.", strings.Join(r.Command, " "))
	}
	p("\n\n## Host\n\n| | |\n| --- | --- |\n")
	p("| kernel | %s |\n| CPUs | %d (%s) |\n| Go | %s |\n| fd limit | %d |\n", r.Host.Kernel, r.Host.CPUs, r.Host.CPUModel, r.Host.Go, r.Host.FDLimit)
	if path := r.Host.Path(); path != "" {
		p("| path measured | %s |\n", path)
	}
	if r.Host.Revision != "" {
		p("| l4bench revision | %s |\n", r.Host.Revision)
	}
	if r.Host.L4Proxy != "" {
		p("| l4proxy | %s |\n", r.Host.L4Proxy)
	}
	for _, k := range sortedKeys(r.Host.Peers) {
		p("| %s | %s |\n", k, r.Host.Peers[k])
	}
	p("\n## Fairness\n\n")
	p("Every design ran with %d worker (GOMAXPROCS, nbthread, worker_processes), a config written by the runner (saved beside this report), on the same path (%s), interleaved in a shuffled order in each of %d rounds (seed %d; the first place dealt evenly). ", r.Settings.Workers, cmp.Or(r.Host.Net, "loopback"), r.Settings.Count, r.Settings.Seed)
	if r.Settings.ProxyCPUs != "" {
		p("Designs were pinned to CPUs %s, the load client and backends to CPUs %s.\n", r.Settings.ProxyCPUs, r.Settings.ClientCPUs)
	} else {
		p("Nothing was pinned: designs, load client and backends shared all CPUs.\n")
	}
	p("\n| design | version | status |\n| --- | --- | --- |\n")
	for _, t := range r.Targets {
		status := "ran"
		if t.Skipped != "" {
			status = "skipped: " + t.Skipped
		}
		p("| %s | %s | %s |\n", t.Name, orDash(t.Version), status)
	}

	if len(r.Failures) > 0 {
		p("\n## Failures\n\nThese designs did not give every sample asked of them, so their rows below are incomplete or missing, and the run exited 1.\n\n")
		for _, f := range r.Failures {
			p("- **%s**\n", f)
		}
	}
	if shows := r.Findings(); len(shows) > 0 {
		p("\n## What this run shows\n\n")
		p("Leads, trails and ties are Mann-Whitney U tests of the two designs' samples (p ≤ %.2f is a difference). The ratio by round is l4proxy's figure over the peer's in each round, both measured in the same minutes: its median, with the 95%% confidence interval of that median (the range of the ratios with fewer than 6 rounds), says how close a tie is.\n\n", stats.Alpha)
		for _, s := range shows {
			p("- %s\n", s)
		}
	}
	if len(plots) > 0 {
		p("\n## Plots\n\nEach bar is the median of the rounds; its error bar spans the 95%% confidence interval of that median (the range of the samples with fewer than 6 rounds). The tables below have every figure.\n")
		for _, pl := range plots {
			p("\n![%s](%s.png)\n", pl.Title, pl.Name)
		}
	}
	if len(r.Notes) > 0 {
		p("\n## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
	}

	p("\n## Results\n\nMedian of the rounds with its 95%% confidence interval (benchstat's order-statistics interval; with fewer than 6 rounds 95%% cannot be reached and the range of the samples is shown, marked †), and the ratio to `direct` (no proxy) measured in the same run. **Bold**: the best design, only when it is better than every other design with significance (Mann-Whitney U, p ≤ %.2f); otherwise the table says it is a tie within noise. `direct` and iperf3 are never the best design. No proxy beats no proxy: a figure better than direct's (a lower latency, a higher throughput or rate) is shown as a tie when not significant, and flagged when it is.\n", stats.Alpha)
	type key struct{ scenario, metric string }
	var keys []key
	for _, rec := range r.Records {
		k := key{rec.Scenario, rec.Metric}
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	last := ""
	for _, k := range keys {
		if k.scenario != last {
			if last != "" {
				p("\n</details>\n")
			}
			p("\n### %s\n", k.scenario)
			last = k.scenario
			if info := r.scenario(k.scenario); info != nil {
				p("\n%s\n", info.Answers)
				if len(info.Params) > 0 {
					var kv []string
					for _, k := range sortedKeys(info.Params) {
						kv = append(kv, fmt.Sprintf("%s %v", k, info.Params[k]))
					}
					p("\nRan with: %s.\n", strings.Join(kv, ", "))
				}
				if info.Caveat != "" {
					p("\n**Read with care:** %s\n", info.Caveat)
				}
			}
			p("\n<details><summary>%s: the tables</summary>\n", k.scenario)
		}
		recs := r.metric(k.scenario, k.metric)
		names := designOrder(recs, order)
		best := Best(recs)
		direct := r.Find(k.scenario, Direct, k.metric)
		p("\n%s (%s, %s is better)\n\n| design | median | 95%% CI | vs direct | samples |\n| --- | ---: | ---: | ---: | ---: |\n", k.metric, recs[0].Unit, recs[0].Better)
		var medians []float64
		for _, rec := range recs {
			medians = append(medians, rec.Median)
		}
		format := ColumnFormat(recs[0].Unit, medians)
		for _, n := range names {
			rec := r.Find(k.scenario, n, k.metric)
			val := format(rec.Median)
			if n == best {
				val = "**" + val + "**"
			}
			iv := stats.CI(rec.Samples)
			mark := ""
			if iv.Warning != "" {
				mark = " †"
			}
			p("| %s | %s | %s – %s%s | %s | %d |\n", n, val, format(iv.Lo), format(iv.Hi), mark, VsDirect(rec, direct), len(rec.Samples))
		}
		designs := 0
		for _, rec := range recs {
			if IsDesign(rec.Target) {
				designs++
			}
		}
		if best == "" && designs > 1 && !slices.Contains(Informational, k.metric) {
			p("\nNo design is best with significance here: a tie within noise.\n")
		}
	}
	if last != "" {
		p("\n</details>\n")
	}

	if len(r.Histograms) > 0 {
		p("\n## Latency over all rounds\n\nEach design's latency histogram merged over every round (HdrHistogram, stored encoded in results.json). A percentile is shown only when at least %d requests lie beyond it; `-` means too few.\n\n", MinBeyond)
		p("| scenario | design | timed | requests | p50 | p99 | p99.9 | p99.99 | max |\n| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, h := range r.Histograms {
			cell := func(name string) string {
				if v, ok := h.Percentiles[name]; ok {
					return FormatValue(v, h.Unit)
				}
				return "-"
			}
			p("| %s | %s | %s | %d | %s | %s | %s | %s | %s |\n", h.Scenario, h.Target, h.What, h.Count, cell("p50"), cell("p99"), cell("p999"), cell("p9999"), FormatValue(h.Max, h.Unit))
		}
	}
	if len(r.Syscalls) > 0 {
		p("\n## Data path (strace)\n\nEach design ran under `strace -f` in runs separate from every timed run, while a fixed payload crossed it. The verdict comes from which path carried the payload bytes: `splice` when bytes returned by read-like calls were under %.0f%% of the payload moved, `userspace` when spliced bytes were under %.0f%%, `mixed` otherwise.\n\n", MixedThresholdPct, MixedThresholdPct)
		p("| scenario | design | MiB | syscalls/MiB | splice | read-like | write-like | epoll+futex | verdict |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
		for _, sp := range r.Syscalls {
			verdict := sp.Verdict
			if sp.Expected != "" && sp.Expected != sp.Verdict {
				verdict += fmt.Sprintf(" (**expected %s**)", sp.Expected)
			}
			reads := sp.PerMiB["read"] + sp.PerMiB["readv"] + sp.PerMiB["recvfrom"] + sp.PerMiB["recvmsg"]
			writes := sp.PerMiB["write"] + sp.PerMiB["writev"] + sp.PerMiB["sendto"] + sp.PerMiB["sendmsg"]
			waits := sp.PerMiB["epoll_wait"] + sp.PerMiB["epoll_pwait"] + sp.PerMiB["futex"] + sp.PerMiB["poll"] + sp.PerMiB["ppoll"]
			p("| %s | %s | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %s |\n", sp.Scenario, sp.Target, sp.MiB, sp.Total, sp.PerMiB["splice"], reads, writes, waits, verdict)
		}
	}
	if r.Conformance != nil {
		r.Conformance.markdown(w)
	}
}

// MixedThresholdPct mirrors measure.MixedThreshold for the report's text.
const MixedThresholdPct = 5.0

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Findings are sentences derived from this run's numbers only: where
// l4proxy's best design leads, trails or ties each peer on every ranked
// metric (Standing), every design whose data path under strace was not
// the one it declares, and what each scenario derived from its own data.
func (r *Results) Findings() []string {
	out := r.Standing()
	for _, p := range r.Syscalls {
		if p.Expected != "" && p.Expected != p.Verdict {
			out = append(out, fmt.Sprintf("**%s was `%s` in %s, not the expected `%s`.**", p.Target, p.Verdict, p.Scenario, p.Expected))
		}
	}
	for _, sc := range r.Scenarios {
		out = append(out, sc.Findings...)
	}
	return out
}

// scenario is what the catalogue said of a scenario, or nil.
func (r *Results) scenario(name string) *ScenarioInfo {
	for i := range r.Scenarios {
		if r.Scenarios[i].Name == name {
			return &r.Scenarios[i]
		}
	}
	return nil
}

func (r *Results) metric(scenario, metric string) []Record {
	var out []Record
	for _, rec := range r.Records {
		if rec.Scenario == scenario && rec.Metric == metric {
			out = append(out, rec)
		}
	}
	return out
}

// WriteReport renders the plots and report.md into dir, beside
// results.json.
func (r *Results) WriteReport(dir string, order []string) error {
	plots, err := r.RenderPlots(dir, order)
	if err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "report.md"))
	if err != nil {
		return err
	}
	r.Markdown(f, order, plots)
	if err := f.Close(); err != nil {
		return err
	}
	c, err := os.Create(filepath.Join(dir, "results.csv"))
	if err != nil {
		return err
	}
	if err := r.WriteCSV(c); err != nil {
		_ = c.Close()
		return err
	}
	return c.Close()
}

// WriteCSV writes one row per sample, for spreadsheets and pandas:
// scenario, target, metric, unit, better, round, value.
func (r *Results) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"scenario", "target", "metric", "unit", "better", "round", "value"}); err != nil {
		return err
	}
	for _, rec := range r.Records {
		rounds := rec.ByRound()
		for _, round := range sortedRounds(rounds) {
			if err := cw.Write([]string{rec.Scenario, rec.Target, rec.Metric, rec.Unit, rec.Better, strconv.Itoa(round),
				strconv.FormatFloat(rounds[round], 'g', -1, 64)}); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

func sortedRounds(m map[int]float64) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
