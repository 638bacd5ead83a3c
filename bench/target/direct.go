package target

import "github.com/l4bench/l4bench/bench/report"

// Direct is no proxy at all: the load client talks to the backends. Every
// run measures it, and ratios to it are what compare across machines.
type Direct struct{}

func init() { Register(Direct{}) }

// Name implements Target.
func (Direct) Name() string { return report.Direct }

// Check implements Target.
func (Direct) Check() (string, error) { return "-", nil }

// Start implements Target.
func (Direct) Start(spec Spec) (*Instance, error) {
	inst := &Instance{Target: report.Direct, wrap: spec.Wrap, Addrs: map[string]string{}, Command: []string{"(none: clients connect to the backends)"}}
	for k, a := range spec.Backends {
		inst.Addrs[k] = a
	}
	return inst, nil
}
