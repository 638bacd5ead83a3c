// Package report holds the results schema (l4bench/results/v1), reads and
// writes results.json, and renders summaries of it.
package report

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/l4bench/l4bench/bench/stats"
)

// Schema is the version string every results.json carries.
const Schema = "l4bench/results/v1"

// Results is one run: its host, its designs and every measured record.
type Results struct {
	Schema   string    `json:"schema"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitempty"`
	Profile  string    `json:"profile"`
	Command  []string  `json:"command,omitempty"`
	Host     Host      `json:"host"`
	Settings Settings  `json:"settings"`
	Records  []Record  `json:"records"`
	Targets  []Target  `json:"targets,omitempty"`
	Notes    []string  `json:"notes,omitempty"`
	// Syscalls is the optional syscall section (l4bench run --scenario syscalls).
	Syscalls []SyscallProfile `json:"syscalls,omitempty"`
	// Conformance is the optional conformance section (l4bench run --conform).
	Conformance *Conformance `json:"conformance,omitempty"`
	// Histograms are the latency histograms of each design and scenario,
	// merged over the rounds.
	Histograms []Histogram `json:"histograms,omitempty"`
	// Scenarios says what each scenario of the run answers and what the
	// machine puts under its figures; the report shows both above its
	// tables.
	Scenarios []ScenarioInfo `json:"scenarios,omitempty"`
	// Failures are the requested designs that did not give every sample
	// asked of them: not installed when asked for by name, failed to
	// start, died, or lost a sample. A run with failures exits 1.
	Failures []Failure `json:"failures,omitempty"`
}

// Failure is one way a requested design fell short of the run. Scenario
// and Round are empty when it concerns the whole run (it never started).
type Failure struct {
	Target   string `json:"target"`
	Scenario string `json:"scenario,omitempty"`
	Round    int    `json:"round,omitempty"`
	Why      string `json:"why"`
}

// String is the failure in one line.
func (f Failure) String() string {
	where := f.Target
	if f.Scenario != "" {
		where += " in " + f.Scenario
		if f.Round > 0 {
			where += fmt.Sprintf(" round %d", f.Round)
		}
	}
	return where + ": " + f.Why
}

// ScenarioInfo is what the scenario catalogue says of one scenario.
type ScenarioInfo struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Answers string `json:"answers"`
	// Caveat is what a reader must know before comparing its figures,
	// such as a floor the machine puts under every design.
	Caveat string `json:"caveat,omitempty"`
	// Plots are the figures the scenario asks the report to draw.
	Plots []PlotSpec `json:"plots,omitempty"`
	// Headline is the scenario's main metric: the report's overview
	// heatmap shows each design's share of direct's figure on it.
	Headline string `json:"headline,omitempty"`
	// Sweep names the series of scenarios this one is a point of (the
	// same load with one parameter changed); a "sweep" plot draws them.
	Sweep string `json:"sweep,omitempty"`
	// Params are the scenario's parameters as they ran (the profile's
	// duration, and any the run adjusted, included).
	Params map[string]any `json:"params,omitempty"`
	// Findings are sentences the scenario derived from this run's data
	// (what strace saw, for example); the report lists them as they are.
	Findings []string `json:"findings,omitempty"`
}

// PlotSpec is one plot a scenario asks for.
type PlotSpec struct {
	// Name is the file name, without extension.
	Name  string `json:"name" yaml:"name"`
	Title string `json:"title" yaml:"title"`
	// Kind is "bars" (the default: the metric's median per design, with
	// its interval), "percentiles" (latency by percentile, per design),
	// "spectrum" (the merged HDR histograms' percentile spectrum),
	// "syscalls" (syscalls per MiB, per design, by data path) or "sweep"
	// (Metric against the parameter X over the scenarios of the run in
	// the same sweep, one line per design).
	Kind   string `json:"kind,omitempty" yaml:"kind"`
	Metric string `json:"metric,omitempty" yaml:"metric"`
	YLabel string `json:"ylabel,omitempty" yaml:"ylabel"`
	// Divide scales the values for the axis (1073741824 for GiB); 0 or 1
	// leaves them.
	Divide float64 `json:"divide,omitempty" yaml:"divide"`
	// X is the scenario parameter a sweep plot puts on its x axis, and
	// XLabel that axis's name.
	X      string `json:"x,omitempty" yaml:"x"`
	XLabel string `json:"xlabel,omitempty" yaml:"xlabel"`
	// LogY draws the y axis on a log scale.
	LogY bool `json:"logy,omitempty" yaml:"logy"`
}

// Path says which path the bytes crossed, for the report and the plots'
// footers ("" when the results predate the field).
func (h Host) Path() string {
	rate := ""
	if h.Rate != "" {
		rate = ", shaped to " + h.Rate + " (tbf) on the design's links"
	}
	switch h.Net {
	case "loopback":
		return fmt.Sprintf("loopback (lo, MTU %d): every role on this host", h.MTU)
	case "veth":
		return fmt.Sprintf("veth, MTU %d%s: client, design and backends each in a network namespace of the run", h.MTU, rate)
	}
	return h.Net
}

// Host describes the machine.
type Host struct {
	Kernel   string            `json:"kernel"`
	CPUs     int               `json:"cpus"`
	CPUModel string            `json:"cpu_model,omitempty"`
	Go       string            `json:"go"`
	Peers    map[string]string `json:"peers,omitempty"`
	FDLimit  uint64            `json:"fd_limit,omitempty"`
	// Revision is the VCS revision l4bench was built from, with "+dirty"
	// for a modified tree ("" when the build carries none).
	Revision string `json:"revision,omitempty"`
	// L4Proxy is what the l4proxy binary of the run says of itself
	// (l4proxy --version): module version, VCS revision, Go.
	L4Proxy string `json:"l4proxy,omitempty"`
	// Net is the path the bytes crossed: "loopback" (every role on this
	// host's lo) or "veth" (client, design and backends each in a network
	// namespace of the run, joined by veth pairs); MTU is that path's MTU,
	// and Rate the tbf rate on the design's links ("" for none).
	Net  string `json:"net,omitempty"`
	MTU  int    `json:"mtu,omitempty"`
	Rate string `json:"rate,omitempty"`
	// Sysctls are the network settings that change what is measured
	// (tcp_rmem/wmem, somaxconn, ip_local_port_range, congestion control).
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// CPUGovernor is the CPU frequency governor, where the machine has one.
	CPUGovernor string `json:"cpu_governor,omitempty"`
}

// Settings are the fairness settings every design ran with.
type Settings struct {
	Workers    int    `json:"workers"`
	ProxyCPUs  string `json:"proxy_cpus,omitempty"`
	ClientCPUs string `json:"client_cpus,omitempty"`
	Count      int    `json:"count"`
	// Seed drew the order of the designs in each round (shuffled, with
	// the first place dealt evenly).
	Seed int64 `json:"seed,omitempty"`
	// StreamWarmup is the start of each stream sample left out of its
	// throughput, which counts bytes where they arrived.
	StreamWarmup string `json:"stream_warmup,omitempty"`
}

// Record is one metric of one design in one scenario.
type Record struct {
	Scenario string    `json:"scenario"`
	Target   string    `json:"target"`
	Metric   string    `json:"metric"`
	Unit     string    `json:"unit"`
	Better   string    `json:"better"` // "higher" or "lower"
	Samples  []float64 `json:"samples"`
	// Rounds says which round (from 1) each sample came from, so ratios
	// pair by round even when a sample is missing.
	Rounds []int   `json:"rounds,omitempty"`
	Median float64 `json:"median"`
}

// ByRound returns the record's samples keyed by round. A record from
// before rounds were kept pairs by position (round i+1 for sample i).
func (rec *Record) ByRound() map[int]float64 {
	out := make(map[int]float64, len(rec.Samples))
	for i, v := range rec.Samples {
		round := i + 1
		if len(rec.Rounds) == len(rec.Samples) {
			round = rec.Rounds[i]
		}
		out[round] = v
	}
	return out
}

// PairByRound returns the two records' samples of the rounds both have
// (a NaN in either leaves the round out), in round order.
func PairByRound(a, b *Record) (as, bs []float64) {
	am, bm := a.ByRound(), b.ByRound()
	var rounds []int
	for r, x := range am {
		if y, ok := bm[r]; ok && !math.IsNaN(x) && !math.IsNaN(y) {
			rounds = append(rounds, r)
		}
	}
	slices.Sort(rounds)
	for _, r := range rounds {
		as = append(as, am[r])
		bs = append(bs, bm[r])
	}
	return as, bs
}

// Target is how one design ran, or why it did not.
type Target struct {
	Name    string   `json:"name"`
	Version string   `json:"version,omitempty"`
	Command []string `json:"command,omitempty"`
	Config  string   `json:"config,omitempty"`
	Skipped string   `json:"skipped,omitempty"`
}

// Metric describes a metric name: its unit and which way is better.
type Metric struct{ Unit, Better string }

// Metrics are the metric names in use.
var Metrics = map[string]Metric{
	"throughput":       {"bytes/s", "higher"},
	"cpu_per_gib":      {"s/GiB", "lower"},
	"latency_p50":      {"us", "lower"},
	"latency_p99":      {"us", "lower"},
	"latency_p999":     {"us", "lower"},
	"latency_p9999":    {"us", "lower"},
	"rps":              {"req/s", "higher"},
	"conn_rate":        {"conn/s", "higher"},
	"rss_per_conn":     {"KiB", "lower"},
	"fds_per_conn":     {"fds", "lower"},
	"slab_per_conn":    {"KiB", "lower"},
	"udp_pps":          {"datagrams/s", "higher"},
	"udp_loss":         {"fraction", "lower"},
	"syscalls_per_mib": {"calls/MiB", "lower"},
	"rss_peak":         {"KiB", "lower"},
	"rss_steady":       {"KiB", "lower"},
	"threads":          {"threads", "lower"},
	// How late a paced client sent after the intended time: a property of
	// the harness, shown so a reader can judge the latency beside it.
	"send_lateness_p50": {"us", "lower"},
	"send_lateness_p99": {"us", "lower"},
	"connect_p50":       {"us", "lower"},
	"connect_p99":       {"us", "lower"},
	"udp_capacity_pps":  {"datagrams/s", "higher"},
	"cpus_used":         {"CPUs", "lower"},
	// slab_per_conn is system-wide (client and backend sockets included);
	// slab_own_per_conn subtracts direct's figure of the same round.
	"slab_own_per_conn": {"KiB", "lower"},
}

// Add appends a sample to the record of (scenario, target, metric), as
// the round after the record's last.
func (r *Results) Add(scenario, target, metric string, v float64) {
	round := 1
	if rec := r.Find(scenario, target, metric); rec != nil && len(rec.Rounds) > 0 {
		round = rec.Rounds[len(rec.Rounds)-1] + 1
	}
	r.AddRound(round, scenario, target, metric, v)
}

// AddRound appends the sample of round (from 1) to the record of
// (scenario, target, metric), creating it with the metric's unit and
// direction.
func (r *Results) AddRound(round int, scenario, target, metric string, v float64) {
	if rec := r.Find(scenario, target, metric); rec != nil {
		rec.Samples = append(rec.Samples, v)
		rec.Rounds = append(rec.Rounds, round)
		rec.Median = stats.Median(rec.Samples)
		return
	}
	m, ok := Metrics[metric]
	if !ok {
		panic("report: unknown metric " + metric)
	}
	r.Records = append(r.Records, Record{Scenario: scenario, Target: target, Metric: metric, Unit: m.Unit, Better: m.Better,
		Samples: []float64{v}, Rounds: []int{round}, Median: v})
}

// Find returns the record of (scenario, target, metric), or nil.
func (r *Results) Find(scenario, target, metric string) *Record {
	for i := range r.Records {
		rec := &r.Records[i]
		if rec.Scenario == scenario && rec.Target == target && rec.Metric == metric {
			return rec
		}
	}
	return nil
}

// Save writes results.json, indented, sorted for stable diffs.
func (r *Results) Save(path string) error {
	sort.SliceStable(r.Records, func(i, j int) bool {
		a, b := r.Records[i], r.Records[j]
		if a.Scenario != b.Scenario {
			return a.Scenario < b.Scenario
		}
		if a.Metric != b.Metric {
			return a.Metric < b.Metric
		}
		return a.Target < b.Target
	})
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// Load reads a results.json and checks its schema.
func Load(path string) (*Results, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: not a results file: %w", path, err)
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("%s: schema %q, expected %q", path, r.Schema, Schema)
	}
	return &r, nil
}

// SyscallProfile is one design's syscall mix while a fixed payload
// crossed it under strace -f (separate from every timed run).
type SyscallProfile struct {
	Scenario string             `json:"scenario"`
	Target   string             `json:"target"`
	MiB      float64            `json:"mib"`     // payload forwarded while traced
	Calls    map[string]int     `json:"calls"`   // counts by syscall
	PerMiB   map[string]float64 `json:"per_mib"` // counts by syscall per MiB
	Total    float64            `json:"total_per_mib"`
	Spliced  int64              `json:"spliced_bytes"`
	User     int64              `json:"userspace_bytes"`
	Verdict  string             `json:"verdict"` // splice, userspace, mixed
	Expected string             `json:"expected,omitempty"`
}
