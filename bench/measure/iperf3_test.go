package measure

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseIperf3RejectsErrorsAndZeros(t *testing.T) {
	tests := []struct {
		name, out string
		want      float64
		err       string
	}{
		{"a real run", `{"end":{"sum_received":{"seconds":1.2,"bytes":1.2e9,"bits_per_second":8e9}}}`, 1e9, ""},
		{"an error", `{"error":"unable to connect to server","end":{}}`, 0, "unable to connect"},
		{"zero", `{"end":{"sum_received":{"seconds":1,"bytes":0,"bits_per_second":0}}}`, 0, "received nothing"},
		{"not json", `iperf3: error`, 0, "iperf3 output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIperf3([]byte(tt.out))
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.InDelta(t, tt.want, got, 1)
		})
	}
}
