package gate

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"

	"github.com/l4bench/l4bench/bench/report"
)

// Allowances as calibrated on this project's CI machine from A/A runs
// (scripts/gatenoise writes the file); used by gate --ab when no
// --allowances file is given.
//
//go:embed allowances.json
var calibrated []byte

// Calibration is the allowances file: per metric, the allowance and the
// noise it came from.
type Calibration struct {
	// Runs is how many A/A runs it was measured on, and Rounds their
	// rounds each.
	Runs   int `json:"runs"`
	Rounds int `json:"rounds"`
	// Margin multiplies the largest change seen; Floor is the smallest
	// allowance, in percent.
	Margin float64 `json:"margin"`
	Floor  float64 `json:"floor"`
	// Metrics maps "scenario/metric" to its allowance and noise.
	Metrics map[string]Noise `json:"metrics"`
}

// Noise is what A/A runs showed of one scenario's metric, in percent.
type Noise struct {
	// Largest is the largest |change| of a row (any design) over the
	// runs; Allowance = max(Floor, Margin × Largest).
	Largest   float64 `json:"largest"`
	Allowance float64 `json:"allowance"`
	Rows      int     `json:"rows"`
}

// Calibrate measures each scenario's metric's noise from A/A runs: runs
// of one build against itself under two names. The allowance is the
// largest change seen, times margin, and at least floor: a metric that
// never moved (fds per connection) gets the floor, so a change of one fd
// is caught.
func Calibrate(runs []*report.Results, base, head string, margin, floor float64) (Calibration, error) {
	c := Calibration{Runs: len(runs), Margin: margin, Floor: floor, Metrics: map[string]Noise{}}
	for _, r := range runs {
		c.Rounds = max(c.Rounds, r.Settings.Count)
	}
	err := eachAARow(runs, base, head, func(run int, row Row) error {
		if row.Verdict == Missing || row.Verdict == TooFew {
			return fmt.Errorf("run %d: %s / %s / %s: %s: an A/A run must be complete", run+1, row.Scenario, row.Target, row.Metric, row.Note)
		}
		k := row.Scenario + "/" + row.Metric
		n := c.Metrics[k]
		n.Largest = max(n.Largest, math.Abs(row.Delta))
		n.Rows++
		c.Metrics[k] = n
		return nil
	})
	if err != nil {
		return c, err
	}
	for k, n := range c.Metrics {
		n.Allowance = max(floor, margin*n.Largest)
		c.Metrics[k] = n
	}
	return c, nil
}

// Allowances returns the per-metric allowances of a calibration.
func (c Calibration) Allowances() map[string]float64 {
	out := map[string]float64{}
	for k, n := range c.Metrics {
		out[k] = n.Allowance
	}
	return out
}

// Keys are the calibrated "scenario/metric" keys, sorted.
func (c Calibration) Keys() []string {
	var out []string
	for k := range c.Metrics {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// LoadCalibration reads an allowances file; "" is the embedded one.
func LoadCalibration(path string) (Calibration, error) {
	data := calibrated
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return Calibration{}, err
		}
	}
	var c Calibration
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("allowances %s: %w", orEmbedded(path), err)
	}
	for _, k := range c.Keys() {
		if a := c.Metrics[k].Allowance; a <= 0 || math.IsNaN(a) || math.IsInf(a, 0) {
			return c, fmt.Errorf("allowances %s: %s: allowance %v is not a positive number", orEmbedded(path), k, a)
		}
	}
	return c, nil
}

func orEmbedded(path string) string {
	if path == "" {
		return "(embedded)"
	}
	return path
}

// HeldOut is one A/A run gated with allowances tuned on the others.
type HeldOut struct {
	// Run is the run's index in the list given to LeaveOneOut.
	Run int
	// Alarms are the rows the gate failed: false alarms, since the run
	// is an A/A run.
	Alarms []Row
}

// LeaveOneOut measures the false-alarm rate of a calibration procedure
// on runs it never saw: each A/A run in turn is left out, the allowances
// are tuned on the others (Calibrate with margin and floor), and the run
// is gated with them. A margin that makes every run of a set pass this
// way was not fitted to the run that would have failed.
func LeaveOneOut(runs []*report.Results, base, head string, margin, floor float64) ([]HeldOut, error) {
	if len(runs) < 2 {
		return nil, fmt.Errorf("leave-one-out needs at least 2 A/A runs, got %d", len(runs))
	}
	out := make([]HeldOut, 0, len(runs))
	for i, r := range runs {
		others := append(append([]*report.Results(nil), runs[:i]...), runs[i+1:]...)
		c, err := Calibrate(others, base, head, margin, floor)
		if err != nil {
			return nil, err
		}
		rows, err := CompareAB(r, base, head, Options{Allowances: c.Allowances()})
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", i+1, err)
		}
		out = append(out, HeldOut{Run: i, Alarms: RegressedRows(rows)})
	}
	return out, nil
}

// Spread is what a set of A/A runs showed of one scenario's metric: the
// |change| the gate saw in each row (each design of each run), and the
// spread of each build's rounds within a row (coefficient of variation).
// Two sets of runs, made before and after a change to how the harness
// measures, say whether the change made the gate's noise smaller:
// Changes is what the allowances are tuned on, RoundCV what the
// signed-rank test sees.
type Spread struct {
	Changes []float64 // |change| of each row, in percent
	RoundCV []float64 // each build's rounds in each row: stddev / mean, in percent
	// Diffs holds each row's differences round by round, head's sample
	// minus base's over base's median, in percent: the values the
	// signed-rank test ranks and whose median is the change.
	Diffs [][]float64
}

// RunLevel tells the two sources of the changes apart. Within is the
// spread of the round-by-round differences inside a row (pooled standard
// deviation); Between is the standard deviation of the rows' mean
// differences; Expected is what Between would be if the rounds of a row
// were independent draws (Within over the square root of the rounds). A
// Between well above Expected is a state that holds for a whole run, one
// build's process or the hour; Between near Expected is noise of the
// rounds, which only more or quieter rounds reduce.
func (s Spread) RunLevel() (within, between, expected float64) {
	var pooled float64 // squared deviations from each row's own mean
	var means []float64
	n := 0
	for _, d := range s.Diffs {
		if len(d) < 2 {
			continue
		}
		m, ss := meanSS(d)
		pooled += ss
		n += len(d) - 1
		means = append(means, m)
	}
	if n == 0 || len(means) < 2 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	within = math.Sqrt(pooled / float64(n))
	_, ss := meanSS(means)
	between = math.Sqrt(ss / float64(len(means)-1))
	rounds := float64(n+len(means)) / float64(len(means)) // the mean rounds per row
	return within, between, within / math.Sqrt(rounds)
}

// Spreads measures the Spread of every scenario's metric over A/A runs,
// keyed "scenario/metric" as the allowances are.
func Spreads(runs []*report.Results, base, head string) (map[string]Spread, error) {
	out := map[string]Spread{}
	err := eachAARow(runs, base, head, func(_ int, row Row) error {
		if row.Verdict == Missing || row.Verdict == TooFew {
			return nil
		}
		k := row.Scenario + "/" + row.Metric
		s := out[k]
		s.Changes = append(s.Changes, math.Abs(row.Delta))
		if row.OldCenter != 0 && len(row.Diffs) > 0 {
			d := make([]float64, len(row.Diffs))
			for i, x := range row.Diffs {
				d[i] = 100 * x
			}
			s.Diffs = append(s.Diffs, d)
		}
		for _, xs := range [][]float64{row.Old, row.New} {
			if cv, ok := coefVar(xs); ok {
				s.RoundCV = append(s.RoundCV, cv)
			}
		}
		out[k] = s
		return nil
	})
	return out, err
}

// eachAARow compares the two builds of each A/A run as the gate does,
// with nothing gated away (every allowance unbounded, tails included),
// and calls fn with each row and its run's index.
func eachAARow(runs []*report.Results, base, head string, fn func(run int, row Row) error) error {
	for i, r := range runs {
		rows, err := CompareAB(r, base, head, Options{MaxRegression: math.MaxFloat64 / 4, GateTails: true})
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		for _, row := range rows {
			if err := fn(i, row); err != nil {
				return err
			}
		}
	}
	return nil
}

// coefVar is the sample standard deviation of xs over their mean, in
// percent; false for fewer than 2 values or a zero mean.
func coefVar(xs []float64) (float64, bool) {
	if len(xs) < 2 {
		return 0, false
	}
	mean, ss := meanSS(xs)
	if mean == 0 {
		return 0, false
	}
	return 100 * math.Sqrt(ss/float64(len(xs)-1)) / math.Abs(mean), true
}

// meanSS is the mean of xs and the sum of their squared deviations from it.
func meanSS(xs []float64) (mean, ss float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, ss
}
