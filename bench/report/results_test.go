package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files")

func sample() *Results {
	r := &Results{
		Schema:   Schema,
		Started:  time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC),
		Finished: time.Date(2026, 11, 25, 13, 2, 0, 0, time.UTC),
		Profile:  "quick",
		Host:     Host{Kernel: "6.18.0", CPUs: 2, Go: "go1.26.8", Peers: map[string]string{"haproxy": "2.6.12"}},
		Settings: Settings{Workers: 1, Count: 3},
		Targets:  []Target{{Name: "direct", Version: "-"}, {Name: "socat", Skipped: "not installed; run scripts/install-peers.sh (Debian package socat)"}},
	}
	for _, v := range []float64{3e9, 3.2e9, 3.1e9} {
		r.Add("tcp-stream-1", "direct", "throughput", v)
	}
	for _, v := range []float64{1.1e9, 1.2e9, 1.15e9} {
		r.Add("tcp-stream-1", "l4proxy-splice", "throughput", v)
	}
	for _, v := range []float64{0.3, 0.28, 0.31} {
		r.Add("tcp-stream-1", "l4proxy-splice", "cpu_per_gib", v)
	}
	return r
}

func TestResultsGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.json")
	require.NoError(t, sample().Save(path))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	golden := "testdata/results.golden.json"
	if *update {
		require.NoError(t, os.WriteFile(golden, got, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got))

	back, err := Load(path)
	require.NoError(t, err)
	rec := back.Find("tcp-stream-1", "l4proxy-splice", "throughput")
	require.NotNil(t, rec)
	assert.Equal(t, []float64{1.1e9, 1.2e9, 1.15e9}, rec.Samples, "every repetition kept, in order")
	assert.Equal(t, []int{1, 2, 3}, rec.Rounds, "each sample says its round")
	assert.Equal(t, 1.15e9, rec.Median)
	assert.Equal(t, "higher", rec.Better)
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, content, want string }{
		{"other schema", `{"schema": "l4bench/results/v2"}`, `schema "l4bench/results/v2", expected "l4bench/results/v1"`},
		{"not json", `hello`, "not a results file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name+".json")
			require.NoError(t, os.WriteFile(p, []byte(tt.content), 0o644))
			_, err := Load(p)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestSummaryShowsIntervalAndRatio(t *testing.T) {
	var buf bytes.Buffer
	sample().Summary(&buf, []string{"direct", "l4proxy-splice"}, false)
	out := buf.String()
	assert.Contains(t, out, "tcp-stream-1 · throughput (bytes/s, higher is better)")
	assert.NotContains(t, out, "*", "direct is never the best design, and one design alone is not best")
	assert.Contains(t, out, "2.79 GiB/s – 2.98 GiB/s †", "three samples: the range, marked")
	assert.Contains(t, out, "0.37x", "ratio of l4proxy-splice to direct")
}
