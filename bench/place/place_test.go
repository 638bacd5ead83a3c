package place

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCommandRunsInThePlace(t *testing.T) {
	argv := []string{"l4proxy", "--config", "x.yaml"}
	assert.Equal(t, argv, Host().Command(argv), "on the host, unchanged")
	ns := Place{NetNS: "l4b-1-design", Addr: designFrontAddr}
	assert.Equal(t, []string{"ip", "netns", "exec", "l4b-1-design", "l4proxy", "--config", "x.yaml"}, ns.Command(argv))
	assert.Equal(t, []string{"l4proxy", "--config", "x.yaml"}, argv, "argv itself is left alone")
}

func TestInTestNet(t *testing.T) {
	for _, tt := range []struct {
		ip string
		in bool
	}{
		{clientAddr, true}, {backendsAddr, true}, {"198.19.255.254", true},
		{"198.20.0.1", false}, {"127.0.0.1", false}, {"10.0.0.1", false},
	} {
		assert.Equal(t, tt.in, InTestNet(net.ParseIP(tt.ip)), tt.ip)
	}
}

func TestDoOnTheHostRunsHere(t *testing.T) {
	ran := false
	assert.NoError(t, Host().Do(func() error { ran = true; return nil }))
	assert.True(t, ran)
	err := Place{NetNS: "l4b-no-such-namespace"}.Do(func() error { t.Fatal("must not run"); return nil })
	assert.ErrorContains(t, err, "enter namespace l4b-no-such-namespace")
}
