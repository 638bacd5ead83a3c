package report

import (
	"fmt"
	"io"
	"strings"
)

// Conformance is the optional conformance section of results.json:
// case × design → pass, lenient, fail or n/a, with what was seen.
type Conformance struct {
	Cases   []string        `json:"cases"`
	Targets []string        `json:"targets"`
	Results []ConformResult `json:"results"`
	// Timeouts are the settings every design got alike, by name.
	Timeouts map[string]string `json:"timeouts,omitempty"`
	Skipped  []string          `json:"skipped,omitempty"`
	// Approximations are settings a design only approximates, as it
	// declares them ("design: feature: how").
	Approximations []string `json:"approximations,omitempty"`
}

// ConformResult is one case on one design.
type ConformResult struct {
	Case     string `json:"case"`
	Target   string `json:"target"`
	Status   string `json:"status"`
	Observed string `json:"observed,omitempty"`
	// Seconds is how long the case took on this design, start included.
	Seconds float64 `json:"seconds,omitempty"`
}

func (c *Conformance) get(cs, t string) *ConformResult {
	for i := range c.Results {
		if c.Results[i].Case == cs && c.Results[i].Target == t {
			return &c.Results[i]
		}
	}
	return nil
}

// markdown writes the report's conformance section.
func (c *Conformance) markdown(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("\n## Conformance\n\nEach case of the conformance catalogue (`docs/conformance.md` in l4bench) ran against a fresh instance of every design (`l4bench conform`). `lenient` is a divergence the catalogue allows, `n/a` a feature the design lacks; every result other than `pass` is explained below the table.\n\n")
	if len(c.Timeouts) > 0 {
		p("Settings every design got alike:\n\n")
		for _, k := range sortedKeys(c.Timeouts) {
			p("- %s: %s\n", k, c.Timeouts[k])
		}
		p("\n")
	}
	p("| case |")
	for _, t := range c.Targets {
		p(" %s |", t)
	}
	p("\n| --- |%s\n", strings.Repeat(" --- |", len(c.Targets)))
	count := map[string]map[string]int{}
	for _, cs := range c.Cases {
		p("| %s |", cs)
		for _, t := range c.Targets {
			s := "-"
			if r := c.get(cs, t); r != nil {
				s = r.Status
				if count[t] == nil {
					count[t] = map[string]int{}
				}
				count[t][s]++
			}
			if s == "fail" {
				s = "**fail**"
			}
			p(" %s |", s)
		}
		p("\n")
	}
	p("| *pass / lenient / fail / n/a* |")
	for _, t := range c.Targets {
		p(" %d / %d / %d / %d |", count[t]["pass"], count[t]["lenient"], count[t]["fail"], count[t]["n/a"])
	}
	p("\n\n")
	for _, r := range c.Results {
		if r.Status != "pass" {
			p("- `%s` on %s, %s: %s\n", r.Case, r.Target, r.Status, r.Observed)
		}
	}
	for _, s := range c.Skipped {
		p("- skipped: %s\n", s)
	}
	for _, s := range c.Approximations {
		p("- approximated: %s\n", s)
	}
}
