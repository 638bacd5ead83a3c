package measure

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseNetCounters(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    map[string]int64
		wantErr string
	}{
		{
			name: "two protocols",
			text: "Tcp: ActiveOpens OutSegs MaxConn\nTcp: 12 3400 -1\nUdp: InDatagrams\nUdp: 7\n",
			want: map[string]int64{"Tcp.ActiveOpens": 12, "Tcp.OutSegs": 3400, "Tcp.MaxConn": -1, "Udp.InDatagrams": 7},
		},
		{
			name: "a value beyond int64 is skipped",
			text: "IpExt: InOctets Big\nIpExt: 5 99999999999999999999\n",
			want: map[string]int64{"IpExt.InOctets": 5},
		},
		{name: "odd lines", text: "Tcp: A\nTcp: 1\nUdp: B\n", wantErr: "pairs"},
		{name: "counts differ", text: "Tcp: A B\nTcp: 1\n", wantErr: "do not pair"},
		{name: "protocols differ", text: "Tcp: A\nUdp: 1\n", wantErr: "do not pair"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]int64{}
			err := parseNetCounters(tt.text, got)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// A loopback connection opened and closed moves the machine's counters:
// one active open, segments out.
func TestNetCountersSeeAConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	before, err := NetCounters()
	require.NoError(t, err)
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	s, err := ln.Accept()
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, s.Close())
	after, err := NetCounters()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, after["Tcp.ActiveOpens"]-before["Tcp.ActiveOpens"], int64(1))
	assert.GreaterOrEqual(t, after["Tcp.OutSegs"]-before["Tcp.OutSegs"], int64(3), "SYN, SYN-ACK, ACK at least")
	assert.Contains(t, after, "TcpExt.DelayedACKs")
}
