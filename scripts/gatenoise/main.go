// Command gatenoise sizes the gate's allowances to this machine's noise.
// It reads A/A runs, runs of one l4proxy build against itself under two
// names (scripts/gate.sh with GATE_BASE=HEAD on a clean tree), tunes each
// scenario's metric's allowance on one set of them, and reports how many
// runs of another set the gate would have failed with those allowances:
// the false-alarm rate, measured on runs the tuning never saw.
//
//	go run ./scripts/gatenoise -tune 'results/aa/t*/*/results.json' \
//	    -check 'results/aa/c*/*/results.json' -out bench/gate/allowances.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/l4bench/l4bench/bench/gate"
	"github.com/l4bench/l4bench/bench/report"
)

func main() {
	tune := flag.String("tune", "", "glob of the A/A runs' results.json to tune on")
	check := flag.String("check", "", "glob of other A/A runs' results.json to count false alarms on")
	out := flag.String("out", "", "write the allowances here (e.g. bench/gate/allowances.json)")
	base := flag.String("base", "base", "the base build's name in the runs")
	head := flag.String("head", "head", "the head build's name in the runs")
	margin := flag.Float64("margin", 1.5, "allowance = margin × the largest change seen")
	floor := flag.Float64("floor", 1, "smallest allowance, in percent")
	flag.Parse()
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
		checkRuns := load(*check, "-check")
		alarms := 0
		for i, r := range checkRuns {
			rows, err := gate.CompareAB(r, *base, *head, gate.Options{Allowances: c.Allowances()})
			fail(err)
			if bad := gate.RegressedRows(rows); len(bad) > 0 {
				alarms++
				fmt.Printf("\ncheck run %d: false alarm on %s / %s / %s: %s %+.1f%% (p=%.3f, allowed %.1f%%)", i+1,
					bad[0].Scenario, bad[0].Target, bad[0].Metric, bad[0].Verdict, bad[0].Delta, bad[0].P, bad[0].Allowance)
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

func load(glob, flagName string) []*report.Results {
	if glob == "" {
		fail(fmt.Errorf("%s is required: a glob of A/A runs' results.json files", flagName))
	}
	files, err := filepath.Glob(glob)
	fail(err)
	if len(files) == 0 {
		fail(fmt.Errorf("%s %q matches no file", flagName, glob))
	}
	sort.Strings(files)
	var out []*report.Results
	for _, f := range files {
		r, err := report.Load(f)
		fail(err)
		out = append(out, r)
	}
	return out
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "gatenoise:", err)
		os.Exit(2)
	}
}
