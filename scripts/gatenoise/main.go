// Command gatenoise sizes the gate's allowances to this machine's noise.
// It reads A/A runs, runs of one l4proxy build against itself under two
// names (GATE_BASE=HEAD GATE_FORCE=1 scripts/gate.sh on a clean tree), tunes each
// scenario's metric's allowance on one set of them, and reports how many
// runs of another set the gate would have failed with those allowances:
// the false-alarm rate, measured on runs the tuning never saw.
//
//	go run ./scripts/gatenoise -tune 'results/aa/t*/*/results.json' \
//	    -check 'results/aa/c*/*/results.json' -out bench/gate/allowances.json
//
// With -detect it measures the gate's power instead: it plants
// regressions of growing size into A/A runs (head's samples of one metric
// made worse by that much) and prints, per metric, the smallest change
// the gate fails in at least -share of the designs × runs, with the
// allowances in force. -join 2 joins consecutive pairs of runs into runs
// of twice the rounds, to see what more rounds buy.
//
//	go run ./scripts/gatenoise -detect 'results/aa/*/*/results.json' -join 2
//
// With -loo it checks a margin before you trust it: each A/A run in turn
// is gated with allowances tuned on all the others, so every run is a
// run the tuning never saw (how the margin of 2 was chosen, README).
//
//	go run ./scripts/gatenoise -loo 'results/aa/*/*/results.json' -margin 1.5
//
// With -noise it shows what A/A runs saw of each metric: the |change| of
// each row (what the allowances are tuned on), each build's spread over
// its rounds (what the signed-rank test sees), and whether the changes
// come from the rounds or from a state that holds for a whole run. With
// -against, a second set of runs beside it, and Mann-Whitney's p for
// each: the way to judge a change to how the harness measures, by A/A
// runs made before and after it in the same hour.
//
//	go run ./scripts/gatenoise -noise 'results/aa-new/*/*/results.json' -against 'results/aa-old/*/*/results.json'
//
// With -merge it writes runs joined -join at a time (consecutive, by file
// name) as results.json files under -into, so that runs of 5 rounds can
// stand for runs of 10 wherever a glob of runs is taken. Every glob may
// be a comma-separated list of globs.
//
//	go run ./scripts/gatenoise -merge 'results/aa5/*/*/results.json' -join 2 -into results/aa5x2
//	go run ./scripts/gatenoise -loo 'results/aa5x2/*/results.json,results/aa10/*/*/results.json'
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/l4bench/l4bench/bench/gate"
	"github.com/l4bench/l4bench/bench/report"
	"github.com/l4bench/l4bench/bench/stats"
)

func main() {
	tune := flag.String("tune", "", "glob of the A/A runs' results.json to tune on")
	check := flag.String("check", "", "glob of other A/A runs' results.json to count false alarms on")
	out := flag.String("out", "", "write the allowances here (e.g. bench/gate/allowances.json)")
	base := flag.String("base", "base", "the base build's name in the runs")
	head := flag.String("head", "head", "the head build's name in the runs")
	margin := flag.Float64("margin", 2, "allowance = margin × the largest change seen")
	floor := flag.Float64("floor", 1, "smallest allowance, in percent")
	detect := flag.String("detect", "", "glob of A/A runs' results.json: measure the smallest change the gate catches")
	join := flag.Int("join", 1, "with -detect or -merge: join this many consecutive runs into one of their rounds together")
	share := flag.Float64("share", 0.9, "with -detect: a change is caught when it fails at least this share of the trials")
	allowances := flag.String("allowances", "", "with -detect: allowances file (default: the ones l4bench embeds)")
	loo := flag.String("loo", "", "glob of A/A runs' results.json: leave each out in turn, tune on the others (-margin, -floor), and count false alarms on the one left out")
	noise := flag.String("noise", "", "glob of A/A runs' results.json: each metric's |change| per row and spread over rounds")
	against := flag.String("against", "", "with -noise: a second glob of A/A runs to set beside it, with Mann-Whitney's p")
	merge := flag.String("merge", "", "glob of A/A runs' results.json to join -join at a time into runs under -into")
	into := flag.String("into", "", "with -merge: the folder to write the joined runs into (made if missing)")
	flag.Parse()
	if *merge != "" {
		mergeRuns(*merge, *join, *into)
		return
	}
	if *against != "" && *noise == "" {
		fail(fmt.Errorf("-against %q needs -noise: the set of runs to compare it with", *against))
	}
	if *noise != "" {
		showNoise(*noise, *against, *base, *head)
		return
	}
	if *loo != "" {
		leaveOneOut(*loo, *base, *head, *margin, *floor)
		return
	}
	if *detect != "" {
		detectable(load(*detect, "-detect"), *base, *head, *join, *share, *allowances)
		return
	}
	tuneRuns := load(*tune, "-tune")
	c, err := gate.Calibrate(tuneRuns, *base, *head, *margin, *floor)
	fail(err)
	fmt.Printf("tuned on %d A/A runs of %d rounds (margin %.2f, floor %.1f%%)\n\n", c.Runs, c.Rounds, c.Margin, c.Floor)
	fmt.Printf("%-36s %6s %12s %12s\n", "scenario/metric", "rows", "largest %", "allowance %")
	for _, k := range c.Keys() {
		n := c.Metrics[k]
		fmt.Printf("%-36s %6d %12.2f %12.2f\n", k, n.Rows, n.Largest, n.Allowance)
	}
	if *check != "" {
		checkFiles, checkRuns := loadFiles(*check, "-check")
		alarms := 0
		for i, r := range checkRuns {
			rows, err := gate.CompareAB(r, *base, *head, gate.Options{Allowances: c.Allowances()})
			fail(err)
			if bad := gate.RegressedRows(rows); len(bad) > 0 {
				alarms++
				fmt.Printf("\ncheck run %d (%s): %s", i+1, checkFiles[i], falseAlarm(bad[0]))
			}
		}
		fmt.Printf("\nfalse alarms: %d of %d check runs\n", alarms, len(checkRuns))
	}
	if *out != "" {
		data, err := json.MarshalIndent(c, "", "  ")
		fail(err)
		fail(os.WriteFile(*out, append(data, '\n'), 0o644))
		fmt.Printf("wrote %s\n", *out)
	}
}

func detectable(runs []*report.Results, base, head string, join int, share float64, allowancesFile string) {
	if share <= 0 || share > 1 {
		fail(fmt.Errorf("-share %v: want a share above 0 and at most 1, e.g. 0.9", share))
	}
	c, err := gate.LoadCalibration(allowancesFile)
	fail(err)
	sets := joinRuns(runs, join)
	var sizes []float64
	for p := 0.5; p < 10; p += 0.5 {
		sizes = append(sizes, p)
	}
	for p := 10.0; p <= 300; p++ {
		sizes = append(sizes, p)
	}
	ds, err := gate.Detectable(sets, base, head, gate.Options{Allowances: c.Allowances()}, sizes, share)
	fail(err)
	fmt.Printf("%d A/A sets of %d rounds (%d runs joined per set); caught = failed in at least %.0f%% of designs × sets\n\n",
		len(sets), sets[0].Settings.Count, join, share*100)
	fmt.Printf("%-36s %11s %14s %16s\n", "scenario/metric", "allowance %", "smallest %", "10% caught")
	for _, d := range ds {
		smallest := "none to 300"
		if !math.IsNaN(d.Smallest) {
			smallest = fmt.Sprintf("%.1f", d.Smallest)
		} else if d.Better == "higher" {
			smallest = "none below 100"
		}
		fmt.Printf("%-36s %11.1f %14s %10d of %d\n", d.Key, d.Allowance, smallest, d.Caught10, d.Trials)
	}
}

func leaveOneOut(glob, base, head string, margin, floor float64) {
	files, runs := loadFiles(glob, "-loo")
	held, err := gate.LeaveOneOut(runs, base, head, margin, floor)
	fail(err)
	alarms := 0
	for _, h := range held {
		if len(h.Alarms) == 0 {
			continue
		}
		alarms++
		fmt.Printf("left out %s: %s\n", files[h.Run], falseAlarm(h.Alarms[0]))
	}
	fmt.Printf("margin %.2f, floor %.1f%%: false alarms in %d of %d runs left out, each gated with allowances tuned on the other %d\n",
		margin, floor, alarms, len(held), len(held)-1)
}

// showNoise prints each metric's spreads over the runs of glob, and
// beside them those of the runs of against, if given.
func showNoise(glob, against, base, head string) {
	sets := []string{glob}
	if against != "" {
		sets = append(sets, against)
	}
	var spreads []map[string]gate.Spread
	for i, g := range sets {
		runs := load(g, []string{"-noise", "-against"}[i])
		s, err := gate.Spreads(runs, base, head)
		fail(err)
		spreads = append(spreads, s)
		fmt.Printf("set %d: %s, %d A/A runs\n", i+1, g, len(runs))
	}
	var keys []string
	for k := range spreads[0] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Printf("\n|change| of each row, and each build's spread over its rounds (coefficient of variation), in %%\n")
	fmt.Printf("%-32s %4s %5s %7s %7s %7s %9s\n", "scenario/metric", "set", "rows", "median", "p90", "max", "round cv")
	for _, k := range keys {
		for i, s := range spreads {
			sp, ok := s[k]
			if !ok {
				fmt.Printf("%-32s %4d %5s\n", k, i+1, "-")
				continue
			}
			fmt.Printf("%-32s %4d %5d %7.1f %7.1f %7.1f %9.1f\n", k, i+1, len(sp.Changes),
				stats.Median(sp.Changes), quantile(sp.Changes, 0.9), slices.Max(sp.Changes), stats.Median(sp.RoundCV))
		}
		if len(spreads) == 2 {
			if b, ok := spreads[1][k]; ok {
				a := spreads[0][k]
				fmt.Printf("%-32s Mann-Whitney p: |change| %.3f, round cv %.3f\n", "", stats.P(a.Changes, b.Changes), stats.P(a.RoundCV, b.RoundCV))
			}
		}
	}
	showRunLevel(keys, spreads)
}

// showRunLevel prints, per metric and set, whether the changes come from
// the rounds or from states that hold for a whole run (gate.Spread's
// RunLevel).
func showRunLevel(keys []string, spreads []map[string]gate.Spread) {
	fmt.Printf("\nround-by-round differences: their spread within a row, the spread of the rows' means,\nand what that would be if every round were an independent draw, in %%\n")
	fmt.Printf("%-32s %4s %11s %11s %15s\n", "scenario/metric", "set", "within row", "row means", "if independent")
	for _, k := range keys {
		for i, s := range spreads {
			if sp, ok := s[k]; ok {
				w, b, e := sp.RunLevel()
				fmt.Printf("%-32s %4d %11.1f %11.1f %15.1f\n", k, i+1, w, b, e)
			}
		}
	}
}

// quantile is the q-quantile of xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[int(math.Ceil(q*float64(len(s))))-1]
}

// joinRuns joins consecutive runs join at a time (gate.Join); a last
// group with fewer runs is left out.
func joinRuns(runs []*report.Results, join int) []*report.Results {
	if join < 1 || join > len(runs) {
		fail(fmt.Errorf("-join %d: want 1 to the number of runs (%d)", join, len(runs)))
	}
	var sets []*report.Results
	for i := 0; i+join <= len(runs); i += join {
		j, err := gate.Join(runs[i : i+join])
		fail(err)
		sets = append(sets, j)
	}
	return sets
}

// mergeRuns writes the runs of glob joined join at a time into
// into/NN/results.json.
func mergeRuns(glob string, join int, into string) {
	if into == "" {
		fail(fmt.Errorf("-merge needs -into: the folder to write the joined runs into"))
	}
	if join < 2 {
		fail(fmt.Errorf("-merge needs -join 2 or more (got %d): how many runs to join into one", join))
	}
	files, runs := loadFiles(glob, "-merge")
	sets := joinRuns(runs, join)
	for i, r := range sets {
		dir := filepath.Join(into, fmt.Sprintf("%02d", i+1))
		fail(os.MkdirAll(dir, 0o755))
		fail(r.Save(filepath.Join(dir, "results.json")))
		fmt.Printf("%s: %d rounds, from %s\n", filepath.Join(dir, "results.json"), r.Settings.Count, strings.Join(files[i*join:(i+1)*join], " + "))
	}
	if left := len(runs) % join; left > 0 {
		fmt.Printf("left out %d run(s) at the end: fewer than -join %d\n", left, join)
	}
}

// falseAlarm describes the first row an A/A run failed.
func falseAlarm(a gate.Row) string {
	return fmt.Sprintf("false alarm on %s / %s / %s: %s %+.1f%% (p=%.3f, allowed %.1f%%)",
		a.Scenario, a.Target, a.Metric, a.Verdict, a.Delta, a.P, a.Allowance)
}

func load(glob, flagName string) []*report.Results {
	_, runs := loadFiles(glob, flagName)
	return runs
}

// loadFiles reads the runs a glob (or a comma-separated list of globs)
// matches, each glob's files sorted by name, in the order of the globs.
func loadFiles(globs, flagName string) ([]string, []*report.Results) {
	if globs == "" {
		fail(fmt.Errorf("%s is required: a glob of A/A runs' results.json files", flagName))
	}
	var files []string
	for _, glob := range strings.Split(globs, ",") {
		matched, err := filepath.Glob(glob)
		fail(err)
		if len(matched) == 0 {
			fail(fmt.Errorf("%s %q matches no file", flagName, glob))
		}
		sort.Strings(matched)
		files = append(files, matched...)
	}
	var out []*report.Results
	for _, f := range files {
		r, err := report.Load(f)
		fail(err)
		out = append(out, r)
	}
	return files, out
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "gatenoise:", err)
		os.Exit(2)
	}
}
