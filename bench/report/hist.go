package report

import (
	"fmt"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// MinBeyond is how many samples must lie beyond a percentile for it to be
// reported: with fewer, p99.99 of 2400 requests is simply the maximum.
const MinBeyond = 10

// Reportable says whether the percentile q (0.999 for p99.9) of count
// samples has at least MinBeyond samples beyond it.
func Reportable(count int64, q float64) bool {
	return float64(count)*(1-q) >= MinBeyond-1e-6 // 1-0.9999 is not exact in floating point
}

// Percentiles are the ones the results report, by metric suffix.
var Percentiles = []struct {
	Name string
	Q    float64
}{{"p50", 0.5}, {"p99", 0.99}, {"p999", 0.999}, {"p9999", 0.9999}}

// Histogram is a latency histogram of one design in one scenario, merged
// over every round, with the percentiles it can support.
type Histogram struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	// What is what was timed: "latency" (the whole exchange) or
	// "connect".
	What  string `json:"what"`
	Unit  string `json:"unit"` // us
	Count int64  `json:"count"`
	// Percentiles holds only those with at least MinBeyond samples
	// beyond them, keyed "p50", "p99", "p999", "p9999".
	Percentiles map[string]float64 `json:"percentiles"`
	Max         float64            `json:"max"`
	// Encoded is the histogram in HdrHistogram's compressed V2 encoding
	// (base64), to decode with any HdrHistogram library.
	Encoded string `json:"encoded"`
}

// NewHistogram summarises and encodes h.
func NewHistogram(scenario, target, what string, h *hdrhistogram.Histogram) (Histogram, error) {
	enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return Histogram{}, fmt.Errorf("encode the %s histogram of %s in %s: %w", what, target, scenario, err)
	}
	out := Histogram{Scenario: scenario, Target: target, What: what, Unit: "us", Count: h.TotalCount(),
		Percentiles: map[string]float64{}, Max: float64(h.Max()), Encoded: string(enc)}
	for _, p := range Percentiles {
		if Reportable(out.Count, p.Q) {
			out.Percentiles[p.Name] = float64(h.ValueAtQuantile(p.Q * 100))
		}
	}
	return out, nil
}

// Decode returns the histogram behind h.
func (h Histogram) Decode() (*hdrhistogram.Histogram, error) {
	return hdrhistogram.Decode([]byte(h.Encoded))
}
