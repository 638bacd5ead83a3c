package report

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
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
	for _, k := range sortedKeys(r.Host.Peers) {
		p("| %s | %s |\n", k, r.Host.Peers[k])
	}
	p("\n## Fairness\n\n")
	p("Every design ran with %d worker (GOMAXPROCS, nbthread, worker_processes), a config written by the runner (saved beside this report), on loopback ports, interleaved in a rotated order in each of %d rounds. ", r.Settings.Workers, r.Settings.Count)
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

	if shows := r.Findings(); len(shows) > 0 {
		p("\n## What this run shows\n\n")
		for _, s := range shows {
			p("- %s\n", s)
		}
	}
	if len(r.Notes) > 0 {
		p("\n## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
	}

	p("\n## Results\n\nMedian of the rounds, spread (half the range, as a percentage of the median), and the ratio to `direct` (no proxy) measured in the same run. **Bold**: the best median.\n")
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
			p("\n### %s\n", k.scenario)
			last = k.scenario
		}
		var recs []Record
		for _, rec := range r.Records {
			if rec.Scenario == k.scenario && rec.Metric == k.metric {
				recs = append(recs, rec)
			}
		}
		names := designOrder(recs, order)
		best := ""
		var bestRec *Record
		for i := range recs {
			if bestRec == nil || better(recs[i], *bestRec) {
				bestRec = &recs[i]
			}
		}
		if bestRec != nil && len(recs) > 1 {
			best = bestRec.Target
		}
		direct := r.Find(k.scenario, "direct", k.metric)
		p("\n%s (%s, %s is better)\n\n| design | median | spread | vs direct | samples |\n| --- | ---: | ---: | ---: | ---: |\n", k.metric, recs[0].Unit, recs[0].Better)
		for _, n := range names {
			rec := r.Find(k.scenario, n, k.metric)
			val := FormatValue(rec.Median, rec.Unit)
			if n == best {
				val = "**" + val + "**"
			}
			ratio := "-"
			if direct != nil && direct.Median != 0 && n != "direct" {
				ratio = fmt.Sprintf("%.2fx", rec.Median/direct.Median)
			}
			p("| %s | %s | ±%.0f%% | %s | %d |\n", n, val, stats.SpreadPct(rec.Samples), ratio, len(rec.Samples))
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
	if len(plots) > 0 {
		p("\n## Plots\n")
		for _, pl := range plots {
			p("\n![%s](%s.png)\n", pl.Title, pl.Name)
		}
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

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Findings are short sentences derived from this run's numbers only.
func (r *Results) Findings() []string {
	var out []string
	ratio := func(a, b float64) string {
		if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
			return "n/a"
		}
		return fmt.Sprintf("%.1fx", a/b)
	}
	// Best throughput on one stream, against direct.
	if recs := r.metric("tcp-stream-1", "throughput"); len(recs) > 1 {
		var best *Record
		for i := range recs {
			if recs[i].Target == "direct" || recs[i].Target == "direct-iperf3" {
				continue
			}
			if best == nil || recs[i].Median > best.Median {
				best = &recs[i]
			}
		}
		if d := r.Find("tcp-stream-1", "direct", "throughput"); best != nil && d != nil {
			out = append(out, fmt.Sprintf("On one bulk stream, %s was the fastest design at %s (%.0f%% of direct's %s).",
				best.Target, FormatValue(best.Median, best.Unit), 100*best.Median/d.Median, FormatValue(d.Median, d.Unit)))
		}
	}
	// Splice against buffered inside l4proxy: syscalls and CPU.
	sp, bu := r.syscallTotal("l4proxy-splice"), r.syscallTotal("l4proxy-buffered")
	cs, cb := r.Find("tcp-stream-1", "l4proxy-splice", "cpu_per_gib"), r.Find("tcp-stream-1", "l4proxy-buffered", "cpu_per_gib")
	if sp > 0 && bu > 0 && cs != nil && cb != nil {
		out = append(out, fmt.Sprintf("Inside l4proxy, splice made %s fewer syscalls per MiB than buffered (%.1f vs %.1f) and used %.0f%% less CPU per GiB (%.3f vs %.3f s/GiB).",
			ratio(bu, sp), sp, bu, 100*(1-cs.Median/cb.Median), cs.Median, cb.Median))
	} else if cs != nil && cb != nil {
		out = append(out, fmt.Sprintf("Inside l4proxy, splice used %.0f%% less CPU per GiB than buffered (%.3f vs %.3f s/GiB).", 100*(1-cs.Median/cb.Median), cs.Median, cb.Median))
	}
	// haproxy splice-auto: what it really did.
	for _, p := range r.Syscalls {
		if p.Target == "haproxy-splice-auto" {
			out = append(out, fmt.Sprintf("haproxy with option splice-auto was `%s` in %s (%d bytes spliced, %d through user space).", p.Verdict, p.Scenario, p.Spliced, p.User))
		}
		if p.Expected != "" && p.Expected != p.Verdict {
			out = append(out, fmt.Sprintf("**%s was `%s` in %s, not the expected `%s`.**", p.Target, p.Verdict, p.Scenario, p.Expected))
		}
	}
	// traefik, the design l4proxy is modelled on: which path it took.
	for _, p := range r.Syscalls {
		if p.Target != "traefik" {
			continue
		}
		line := fmt.Sprintf("traefik's data path was `%s` in %s: %d bytes spliced, %d through user space, %.1f syscalls per MiB", p.Verdict, p.Scenario, p.Spliced, p.User, p.Total)
		for _, q := range r.Syscalls {
			if q.Target == "l4proxy-splice" && q.Scenario == p.Scenario {
				line += fmt.Sprintf(" against %.1f for l4proxy-splice (`%s`)", q.Total, q.Verdict)
			}
		}
		out = append(out, line+".")
		break
	}
	tt, ts := r.Find("tcp-stream-1", "traefik", "throughput"), r.Find("tcp-stream-1", "l4proxy-splice", "throughput")
	tc, sc := r.Find("tcp-stream-1", "traefik", "cpu_per_gib"), r.Find("tcp-stream-1", "l4proxy-splice", "cpu_per_gib")
	if tt != nil && ts != nil && tc != nil && sc != nil && ts.Median > 0 && sc.Median > 0 {
		out = append(out, fmt.Sprintf("On one bulk stream traefik moved %s (%.0f%% of l4proxy-splice's %s) and used %.3f s of CPU per GiB against %.3f s/GiB (%.1fx).",
			FormatValue(tt.Median, tt.Unit), 100*tt.Median/ts.Median, FormatValue(ts.Median, ts.Unit), tc.Median, sc.Median, tc.Median/sc.Median))
	}
	// l4proxy-splice with each feature that could wrap a conn.
	var variants, spliced []string
	for _, p := range r.Syscalls {
		if name, ok := strings.CutPrefix(p.Target, "l4proxy-splice+"); ok {
			variants = append(variants, name)
			if p.Verdict == "splice" {
				spliced = append(spliced, name)
			}
		}
	}
	if len(variants) > 0 && len(spliced) == len(variants) {
		out = append(out, fmt.Sprintf("l4proxy-splice still spliced with every feature that could wrap its conns turned on (%s).", strings.Join(variants, ", ")))
	}
	// Idle memory: pooled against buffered.
	ip, ib := r.Find("tcp-idle", "l4proxy-pooled", "rss_per_conn"), r.Find("tcp-idle", "l4proxy-buffered", "rss_per_conn")
	if ip != nil && ib != nil && ib.Median > 0 {
		out = append(out, fmt.Sprintf("An idle connection cost l4proxy-pooled %.1f KiB of RSS against %.1f KiB for l4proxy-buffered (%.0f%%).", ip.Median, ib.Median, 100*ip.Median/ib.Median))
	}
	is, il := r.Find("tcp-idle", "l4proxy-splice", "fds_per_conn"), r.Find("tcp-idle", "l4proxy-splice", "slab_own_per_conn")
	if is != nil && il != nil {
		out = append(out, fmt.Sprintf("l4proxy-splice held %.1f fds per idle connection (its two pipes), and the kernel's slab grew %.1f KiB per connection more than with no proxy (its own share: the system-wide growth minus direct's in the same round).", is.Median, il.Median))
	} else if is != nil {
		out = append(out, fmt.Sprintf("l4proxy-splice held %.1f fds per idle connection (its two pipes).", is.Median))
	}
	return out
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

// syscallTotal is a design's syscalls per MiB in the first syscall
// scenario that has it.
func (r *Results) syscallTotal(target string) float64 {
	for _, p := range r.Syscalls {
		if p.Target == target {
			return p.Total
		}
	}
	return 0
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
	return f.Close()
}
