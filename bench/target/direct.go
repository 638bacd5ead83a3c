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

// Support implements Declarer: direct forwards nothing itself, so it has
// none of a proxy's features; a UDP route is the UDP backend itself.
func (d Direct) Support() Support {
	lacks := map[Feature]string{}
	for _, f := range []Feature{FeatureSendProxyV1, FeatureSendProxyV2, FeatureAcceptProxy, FeatureRequireProxy, FeatureIdleTimeout,
		FeatureHalfClose, FeatureConnectTimeout, FeatureHeaderTimeout, FeatureBufferSize, FeatureExtraArgs} {
		lacks[f] = "direct has no proxy in the path"
	}
	return Support{Lacks: lacks}
}

// Start implements Target.
func (d Direct) Start(spec Spec) (*Instance, error) {
	if err := Refuse(d, spec); err != nil {
		return nil, err
	}
	inst := &Instance{Target: report.Direct, wrap: spec.Wrap, Addrs: map[string]string{}, Command: []string{"(none: clients connect to the backends)"}}
	for k, a := range spec.Backends {
		inst.Addrs[k] = a
	}
	return inst, nil
}
