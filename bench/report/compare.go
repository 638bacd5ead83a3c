package report

import (
	"fmt"
	"slices"
	"strings"

	"github.com/l4bench/l4bench/bench/stats"
)

// Direct is the no-proxy baseline's target name.
const Direct = "direct"

// notDesigns are records that are not designs under test: the baseline
// and iperf3's cross-check of it. Neither is ever "best".
var notDesigns = []string{Direct, "direct-iperf3"}

// Informational metrics describe the harness or the run rather than rank
// designs: no "best" and no finding is drawn from them.
var Informational = []string{"send_lateness_p50", "send_lateness_p99", "cpus_used", "threads", "rss_peak", "rss_steady", "slab_per_conn"}

// IsDesign says whether a record's target is a design under test.
func IsDesign(target string) bool { return !slices.Contains(notDesigns, target) }

// isL4Proxy says whether a target is a build of our proxy.
func isL4Proxy(target string) bool { return strings.HasPrefix(target, "l4proxy-") }

// significantlyBetter says whether a is better than b and the difference
// is significant (Mann-Whitney U, stats.Alpha).
func significantlyBetter(a, b Record) bool {
	return better(a, b) && stats.Differ(a.Samples, b.Samples)
}

// Best is the design whose median is best and that is significantly
// better than every other design, or "" (a tie within noise). direct and
// iperf3 never win.
func Best(recs []Record) string {
	var designs []Record
	for _, r := range recs {
		if IsDesign(r.Target) && !slices.Contains(Informational, r.Metric) {
			designs = append(designs, r)
		}
	}
	if len(designs) < 2 {
		return ""
	}
	top := designs[0]
	for _, r := range designs[1:] {
		if better(r, top) {
			top = r
		}
	}
	for _, r := range designs {
		if r.Target != top.Target && !significantlyBetter(top, r) {
			return ""
		}
	}
	return top.Target
}

// VsDirect is a design's ratio to direct as the table shows it. No proxy
// beats no proxy: a design better than direct (a lower latency, a higher
// throughput or rate) is called a tie when the difference is not
// significant, and flagged when it is, since that figure measures the
// harness.
func VsDirect(rec, direct *Record) string {
	if direct == nil || direct.Median == 0 || rec.Target == Direct {
		return "-"
	}
	ratio := fmt.Sprintf("%.2fx", rec.Median/direct.Median)
	better := rec.Median < direct.Median
	word := "below"
	if rec.Better == "higher" {
		better, word = rec.Median > direct.Median, "above"
	}
	if !better || slices.Contains(Informational, rec.Metric) {
		return ratio
	}
	if p := stats.P(rec.Samples, direct.Samples); p > stats.Alpha {
		return fmt.Sprintf("tie (%s, p=%.2f)", ratio, p)
	}
	return fmt.Sprintf("**%s: %s direct, p=%.3f; check the harness**", ratio, word, stats.P(rec.Samples, direct.Samples))
}

// pairedRatio is a's figure over b's, round by round (the designs of a
// round met the machine in the same minutes, so its drift cancels), as
// the median of those ratios with its 95% confidence interval, or the
// whole range when there are too few rounds for one. It is "" when fewer
// than two rounds have both, or b has a zero figure.
func pairedRatio(a, b Record) string {
	as, bs := PairByRound(&a, &b)
	ratios := make([]float64, len(as))
	for i, y := range bs {
		if y == 0 {
			return ""
		}
		ratios[i] = as[i] / y
	}
	if len(ratios) < 2 {
		return ""
	}
	iv := stats.CI(ratios)
	span := "95% CI"
	if iv.Warning != "" {
		span = fmt.Sprintf("range of %d rounds", len(ratios))
	}
	return fmt.Sprintf(", ratio by round %.3f (%s %.3f–%.3f)", iv.Center, span, iv.Lo, iv.Hi)
}

// Standing compares l4proxy's best design with every peer on each
// (scenario, metric) that ranks designs, and says where it leads, trails
// or ties, with the figures, p-values and the ratio of the two paired by
// round (pairedRatio), which says how close a tie is; a difference too
// small to show in the figures is neither a lead nor a trail. Nothing is
// picked by hand: every ranked metric of every scenario yields a line when
// l4proxy and at least one peer were measured.
func (r *Results) Standing() []string {
	type key struct{ scenario, metric string }
	var keys []key
	for _, rec := range r.Records {
		k := key{rec.Scenario, rec.Metric}
		if !slices.Contains(keys, k) && !slices.Contains(Informational, rec.Metric) {
			keys = append(keys, k)
		}
	}
	var out []string
	for _, k := range keys {
		var ours *Record
		var peers []Record
		for _, rec := range r.metric(k.scenario, k.metric) {
			switch {
			case !IsDesign(rec.Target):
			case isL4Proxy(rec.Target):
				if ours == nil || better(rec, *ours) {
					ours = &rec
				}
			default:
				peers = append(peers, rec)
			}
		}
		if ours == nil || len(peers) == 0 {
			continue
		}
		var leads, trails, ties, same []string
		for _, p := range peers {
			fig := fmt.Sprintf("%s %s, p=%.3f%s", p.Target, FormatValue(p.Median, p.Unit), stats.P(ours.Samples, p.Samples), pairedRatio(*ours, p))
			lead, trail := significantlyBetter(*ours, p), significantlyBetter(p, *ours)
			switch {
			case (lead || trail) && FormatValue(p.Median, p.Unit) == FormatValue(ours.Median, ours.Unit):
				// A lead the figures cannot show (2.000 against 2.001
				// fds per connection) is not called one.
				same = append(same, fig)
			case lead:
				leads = append(leads, fig)
			case trail:
				trails = append(trails, fig)
			default:
				ties = append(ties, fig)
			}
		}
		line := fmt.Sprintf("%s, %s: l4proxy's best, %s at %s,", k.scenario, k.metric, ours.Target, FormatValue(ours.Median, ours.Unit))
		var parts []string
		if len(trails) > 0 {
			parts = append(parts, "**trails** "+strings.Join(trails, "; "))
		}
		if len(leads) > 0 {
			parts = append(parts, "leads "+strings.Join(leads, "; "))
		}
		if len(ties) > 0 {
			parts = append(parts, "ties within noise with "+strings.Join(ties, "; "))
		}
		if len(same) > 0 {
			parts = append(parts, "differs significantly but not at the precision shown from "+strings.Join(same, "; "))
		}
		out = append(out, line+" "+strings.Join(parts, "; ")+".")
	}
	return out
}
