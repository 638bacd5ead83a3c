package target

import (
	"fmt"
	"sort"
)

// Feature is something a Spec can ask of a design beyond forwarding TCP
// to its backends with its defaults.
type Feature string

// The features a Spec can ask for.
const (
	FeatureUDP            Feature = "udp"           // a route to Backends[UDP]
	FeatureSendProxyV1    Feature = "send-proxy-v1" // ProxyProtocol 1
	FeatureSendProxyV2    Feature = "send-proxy-v2" // ProxyProtocol 2
	FeatureAcceptProxy    Feature = "accept-proxy"  // AcceptProxy
	FeatureRequireProxy   Feature = "require-proxy" // with AcceptProxy, refuse clients without a header
	FeatureIdleTimeout    Feature = "idle-timeout"  // IdleTimeout
	FeatureHalfClose      Feature = "half-close-timeout"
	FeatureConnectTimeout Feature = "connect-timeout" // ConnectTimeout
	FeatureHeaderTimeout  Feature = "header-timeout"  // HeaderTimeout
	FeatureBufferSize     Feature = "buffer-size"     // BufferSize (l4proxy's)
	FeatureExtraArgs      Feature = "extra-args"      // Extra (l4proxy's flags)
)

// Support is what a design declares about the features: those it lacks,
// each with why, and those it only approximates, each with how. A design
// that lacks a feature a Spec asks for refuses to start (LacksError), so
// that no setting is ever ignored in silence; an approximation is
// allowed, and shown with the results.
type Support struct {
	Lacks       map[Feature]string
	Approximate map[Feature]string
}

// Declarer is a target that declares its support. A target that does not
// is taken to lack every feature.
type Declarer interface {
	Support() Support
}

// Needs lists the features a Spec asks for. FeatureRequireProxy is never
// in it: AcceptProxy asks for the header, and a caller that must have
// clients without one refused checks Support().Lacks itself.
func (s Spec) Needs() []Feature {
	var out []Feature
	add := func(on bool, f Feature) {
		if on {
			out = append(out, f)
		}
	}
	_, udp := s.Backends[UDP]
	add(udp, FeatureUDP)
	add(s.ProxyProtocol == 1, FeatureSendProxyV1)
	add(s.ProxyProtocol == 2, FeatureSendProxyV2)
	add(s.AcceptProxy, FeatureAcceptProxy)
	add(s.IdleTimeout > 0, FeatureIdleTimeout)
	add(s.HalfClose > 0, FeatureHalfClose)
	add(s.ConnectTimeout > 0, FeatureConnectTimeout)
	add(s.HeaderTimeout > 0, FeatureHeaderTimeout)
	add(s.BufferSize > 0, FeatureBufferSize)
	add(len(s.Extra) > 0, FeatureExtraArgs)
	return out
}

// SupportOf is a target's declaration, or "lacks everything" for a
// target that makes none.
func SupportOf(t Target) Support {
	if d, ok := t.(Declarer); ok {
		return d.Support()
	}
	all := map[Feature]string{}
	for _, f := range []Feature{FeatureUDP, FeatureSendProxyV1, FeatureSendProxyV2, FeatureAcceptProxy, FeatureRequireProxy,
		FeatureIdleTimeout, FeatureHalfClose, FeatureConnectTimeout, FeatureHeaderTimeout, FeatureBufferSize, FeatureExtraArgs} {
		all[f] = t.Name() + " declares no support for it"
	}
	return Support{Lacks: all}
}

// LacksError is a Spec asking a design for a feature it lacks.
type LacksError struct {
	Design  string
	Feature Feature
	Why     string
}

func (e *LacksError) Error() string {
	return fmt.Sprintf("%s cannot do %s: %s", e.Design, e.Feature, e.Why)
}

// Refuse returns a LacksError for the first feature spec asks of t that
// t lacks, else nil. Every target's Start calls it first.
func Refuse(t Target, spec Spec) error {
	lacks := SupportOf(t).Lacks
	for _, f := range spec.Needs() {
		if why, ok := lacks[f]; ok {
			return &LacksError{Design: t.Name(), Feature: f, Why: why}
		}
	}
	return nil
}

// Approximations lists, for the features spec asks of t, how t only
// approximates them ("feature: how"), sorted.
func Approximations(t Target, spec Spec) []string {
	approx := SupportOf(t).Approximate
	var out []string
	for _, f := range spec.Needs() {
		if how, ok := approx[f]; ok {
			out = append(out, fmt.Sprintf("%s: %s", f, how))
		}
	}
	sort.Strings(out)
	return out
}
