package report

import (
	"testing"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPercentilesNeedTenBeyond(t *testing.T) {
	tests := []struct {
		count int64
		q     float64
		want  bool
	}{
		{2400, 0.99, true},
		{2400, 0.999, false}, // 2.4 beyond: the third-highest value
		{12000, 0.999, true},
		{12000, 0.9999, false},
		{100000, 0.9999, true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Reportable(tt.count, tt.q), "%d requests, q=%v", tt.count, tt.q)
	}

	h := hdrhistogram.New(1, 60_000_000, 3)
	for i := int64(1); i <= 2400; i++ {
		require.NoError(t, h.RecordValue(i))
	}
	got, err := NewHistogram("tcp-rr-open", "direct", "latency", h)
	require.NoError(t, err)
	assert.Equal(t, int64(2400), got.Count)
	assert.InDelta(t, 1200, got.Percentiles["p50"], 2)
	assert.Contains(t, got.Percentiles, "p99")
	assert.NotContains(t, got.Percentiles, "p999")
	back, err := got.Decode()
	require.NoError(t, err)
	assert.Equal(t, h.TotalCount(), back.TotalCount())
	assert.Equal(t, h.Max(), back.Max())
}
