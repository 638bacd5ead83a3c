package target

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSpecNeeds(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want []Feature
	}{
		{"plain TCP", Spec{Backends: map[string]string{"echo": "x"}}, nil},
		{"UDP route", Spec{Backends: map[string]string{UDP: "x"}}, []Feature{FeatureUDP}},
		{"PROXY v2 sent and required", Spec{ProxyProtocol: 2, AcceptProxy: true, HeaderTimeout: time.Second},
			[]Feature{FeatureSendProxyV2, FeatureAcceptProxy, FeatureHeaderTimeout}},
		{"timeouts", Spec{IdleTimeout: 1, HalfClose: 1, ConnectTimeout: 1}, []Feature{FeatureIdleTimeout, FeatureHalfClose, FeatureConnectTimeout}},
		{"l4proxy's own", Spec{BufferSize: 2048, Extra: []string{"--log-level", "debug"}}, []Feature{FeatureBufferSize, FeatureExtraArgs}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.spec.Needs())
		})
	}
}

// undeclared is a target that says nothing about its features.
type undeclared struct{ Direct }

func (undeclared) Name() string { return "undeclared" }

// A design asked for a feature it lacks refuses to start, naming the
// feature and why; one that declares nothing lacks everything; every
// registered target declares.
func TestDesignsRefuseWhatTheyLack(t *testing.T) {
	socat, err := Lookup("socat")
	require.NoError(t, err)
	err = Refuse(socat, Spec{ProxyProtocol: 1})
	var lacks *LacksError
	require.ErrorAs(t, err, &lacks)
	assert.Equal(t, FeatureSendProxyV1, lacks.Feature)
	assert.Contains(t, err.Error(), "socat cannot do send-proxy-v1: socat has no PROXY protocol")
	_, err = socat.Start(Spec{Dir: t.TempDir(), AcceptProxy: true})
	assert.ErrorAs(t, err, &lacks, "Start itself refuses")

	l4, err := Lookup("l4proxy-splice")
	require.NoError(t, err)
	assert.NoError(t, Refuse(l4, Spec{ProxyProtocol: 2, AcceptProxy: true, IdleTimeout: time.Second, BufferSize: 1 << 10,
		Backends: map[string]string{UDP: "x"}}))

	assert.Error(t, Refuse(undeclared{}, Spec{IdleTimeout: time.Second}))
	assert.NoError(t, Refuse(undeclared{}, Spec{}), "plain TCP needs no feature")

	nginx, err := Lookup("nginx")
	require.NoError(t, err)
	assert.Equal(t, []string{"half-close-timeout: nginx 1.22 has no half-close timeout: with proxy_half_close on, a half-closed connection stays open until proxy_timeout (the idle timeout) ends it"},
		Approximations(nginx, Spec{HalfClose: time.Second}))

	for _, name := range Names() {
		tg, err := Lookup(name)
		require.NoError(t, err)
		_, ok := tg.(Declarer)
		assert.True(t, ok, "%s declares what it supports", name)
	}
}
