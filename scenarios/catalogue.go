// Package scenarios holds the scenario catalogue (embedded YAML) and the
// runner that measures every design against it.
//
//	cat, _ := scenarios.Load()
//	res, dir, err := scenarios.Run(ctx, scenarios.Options{Profile: "quick"})
package scenarios

import (
	_ "embed"
	"fmt"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/l4bench/l4bench/bench/report"
	"github.com/l4bench/l4bench/proxy"
)

//go:embed catalogue.yaml
var catalogueYAML []byte

// Kinds of scenario, one per load client.
const (
	KindStream = "stream"
	KindRR     = "rr"
	KindCRR    = "crr"
	KindIdle   = "idle"
	KindUDP    = "udp"
	// KindUDPCapacity searches for the highest rate a design forwards
	// with loss ≤ 0.1%.
	KindUDPCapacity = "udp-capacity"
	// KindSyscalls traces each design with strace -f while a fixed payload
	// crosses it; it adds to the results' syscalls section, not records.
	KindSyscalls = "syscalls"
)

// Catalogue is the embedded scenario list and its profiles.
type Catalogue struct {
	Profiles  map[string]Profile `yaml:"profiles"`
	Scenarios []Scenario         `yaml:"scenarios"`
}

// Profile sets repetitions and durations for a set of scenarios.
type Profile struct {
	Description string   `yaml:"description"`
	Count       int      `yaml:"count"`
	Duration    Duration `yaml:"duration"`
	IdleConns   int      `yaml:"idle_conns"`
	// LeaveOut are designs a run of this profile skips unless --target
	// names them, and LeaveOutWhy says why (kept within its time).
	LeaveOut    []string `yaml:"leave_out"`
	LeaveOutWhy string   `yaml:"leave_out_why"`
}

// Scenario is one measured situation.
type Scenario struct {
	Name        string   `yaml:"name"`
	Kind        string   `yaml:"kind"`
	Answers     string   `yaml:"answers"`
	Caveat      string   `yaml:"caveat"`
	Profiles    []string `yaml:"profiles"`
	Streams     int      `yaml:"streams"`
	Direction   string   `yaml:"direction"`
	Conns       int      `yaml:"conns"`
	Rate        float64  `yaml:"rate"`
	MessageSize int      `yaml:"message_size"`
	Workers     int      `yaml:"workers"`
	Warmup      int      `yaml:"warmup"`
	Clients     int      `yaml:"clients"`
	Size        int      `yaml:"size"`
	Payload     int64    `yaml:"payload"`
	// Iperf3 cross-checks the direct path's throughput with iperf3 in
	// every round, for as long as the scenario's own client runs.
	Iperf3 bool `yaml:"iperf3"`
	// Plots are the figures of this scenario the report draws.
	Plots []report.PlotSpec `yaml:"plots"`
	// Headline is the scenario's main metric, for the report's overview.
	Headline string `yaml:"headline"`
	// Sweep names the series this scenario is a point of: scenarios of
	// one kind that differ in one parameter, drawn by a "sweep" plot.
	Sweep string `yaml:"sweep"`
}

// Duration is a time.Duration in Go syntax ("250ms", "5s"), read from
// YAML the way l4proxy's configuration reads it.
type Duration = proxy.Duration

// Load parses the embedded catalogue.
func Load() (*Catalogue, error) { return parseCatalogue(catalogueYAML) }

// kindFields are the parameters each kind of scenario reads, beyond the
// ones every scenario has. One Scenario struct carries them all, so a
// parameter its kind does not read would be ignored in silence: the
// catalogue refuses it instead.
var kindFields = map[string][]string{
	KindStream:      {"streams", "direction", "iperf3"},
	KindRR:          {"conns", "rate", "message_size"},
	KindCRR:         {"workers", "message_size"},
	KindIdle:        {"warmup"},
	KindUDP:         {"clients", "rate", "size"},
	KindUDPCapacity: {"clients", "size"},
	KindSyscalls:    {"direction", "payload"},
}

var commonFields = []string{"name", "kind", "answers", "caveat", "profiles", "plots", "headline", "sweep"}

func parseCatalogue(data []byte) (*Catalogue, error) {
	var c Catalogue
	if err := yaml.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("scenario catalogue: %w", err)
	}
	var raw struct {
		Scenarios []map[string]yaml.Node `yaml:"scenarios"`
	}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("scenario catalogue: %w", err)
	}
	names := map[string]bool{}
	for i, s := range c.Scenarios {
		if names[s.Name] {
			return nil, fmt.Errorf("scenario catalogue: %s listed twice", s.Name)
		}
		names[s.Name] = true
		fields, ok := kindFields[s.Kind]
		if !ok {
			return nil, fmt.Errorf("scenario catalogue: %s: unknown kind %q", s.Name, s.Kind)
		}
		for key, node := range raw.Scenarios[i] {
			if !slices.Contains(commonFields, key) && !slices.Contains(fields, key) {
				return nil, fmt.Errorf("scenario catalogue: line %d: %s: %s is not a parameter of a %s scenario (its parameters: %s)",
					node.Line, s.Name, key, s.Kind, strings.Join(fields, ", "))
			}
		}
		for _, p := range s.Profiles {
			if _, ok := c.Profiles[p]; !ok {
				return nil, fmt.Errorf("scenario catalogue: %s: unknown profile %q", s.Name, p)
			}
		}
	}
	if err := c.checkSweeps(); err != nil {
		return nil, fmt.Errorf("scenario catalogue: %w", err)
	}
	return &c, nil
}

// checkSweeps: a sweep plot names a metric and the parameter it sweeps,
// on a scenario in a sweep whose points are all of one kind and each set
// that parameter.
func (c *Catalogue) checkSweeps() error {
	kinds := map[string]string{}
	for _, s := range c.Scenarios {
		if s.Sweep == "" {
			continue
		}
		if k, ok := kinds[s.Sweep]; ok && k != s.Kind {
			return fmt.Errorf("%s: sweep %s mixes kinds %s and %s", s.Name, s.Sweep, k, s.Kind)
		}
		kinds[s.Sweep] = s.Kind
	}
	for _, s := range c.Scenarios {
		for _, ps := range s.Plots {
			if ps.Kind != "sweep" {
				continue
			}
			if s.Sweep == "" || ps.X == "" || ps.Metric == "" {
				return fmt.Errorf("%s: plot %s: a sweep plot needs the scenario's sweep, and the plot's x and metric", s.Name, ps.Name)
			}
			if !slices.Contains(kindFields[s.Kind], ps.X) {
				return fmt.Errorf("%s: plot %s: x %s is not a parameter of a %s scenario (its parameters: %s)", s.Name, ps.Name, ps.X, s.Kind, strings.Join(kindFields[s.Kind], ", "))
			}
		}
	}
	return nil
}

// ProfileNames lists the profiles, shortest first.
func (c *Catalogue) ProfileNames() []string {
	names := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return c.Profiles[names[i]].Count < c.Profiles[names[j]].Count })
	return names
}

// ScenarioNames lists every scenario in catalogue order.
func (c *Catalogue) ScenarioNames() []string {
	var out []string
	for _, s := range c.Scenarios {
		out = append(out, s.Name)
	}
	return out
}

// Select returns the scenarios of a profile, or the named ones (in
// catalogue order), or an error naming the unknown name and the choices.
func (c *Catalogue) Select(profile string, names []string) ([]Scenario, error) {
	if _, ok := c.Profiles[profile]; !ok {
		return nil, fmt.Errorf("--profile: unknown profile %q (choices: %s)", profile, strings.Join(c.ProfileNames(), ", "))
	}
	for _, n := range names {
		if !slices.Contains(c.ScenarioNames(), n) {
			return nil, fmt.Errorf("--scenario: unknown scenario %q (choices: %s)", n, strings.Join(c.ScenarioNames(), ", "))
		}
	}
	var out []Scenario
	for _, s := range c.Scenarios {
		if (len(names) == 0 && slices.Contains(s.Profiles, profile)) || slices.Contains(names, s.Name) {
			out = append(out, s)
		}
	}
	return out, nil
}
