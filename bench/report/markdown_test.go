package report

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var order = []string{"direct", "l4proxy-splice", "l4proxy-buffered", "l4proxy-pooled", "haproxy-splice",
	"haproxy-splice-auto", "haproxy-copy", "nginx", "socat"}

// standard-run.json is a real standard run of this machine (timed
// scenarios and the syscall section), committed as test data.
func loadStandard(t *testing.T) *Results {
	t.Helper()
	r, err := Load("testdata/standard-run.json")
	require.NoError(t, err)
	return r
}

func TestReportGolden(t *testing.T) {
	r := loadStandard(t)
	var buf bytes.Buffer
	r.Markdown(&buf, order, []Plot{{Name: "throughput-1", Title: "Throughput, 1 stream (client to server)"}})
	golden := "testdata/report.golden.md"
	if *update {
		require.NoError(t, os.WriteFile(golden, buf.Bytes(), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	assert.Equal(t, string(want), buf.String())
}

func TestFindingsComeFromTheNumbers(t *testing.T) {
	r := loadStandard(t)
	text := strings.Join(r.Findings(), "\n")
	assert.Contains(t, text, "On one bulk stream, l4proxy-splice was the fastest design")
	assert.Contains(t, text, "fewer syscalls per MiB than buffered")
	assert.Contains(t, text, "haproxy with option splice-auto was")

	// Change the numbers: the sentences follow.
	for i := range r.Records {
		rec := &r.Records[i]
		if rec.Scenario == "tcp-stream-1" && rec.Metric == "throughput" && rec.Target == "nginx" {
			rec.Median = 1e12
		}
	}
	assert.Contains(t, strings.Join(r.Findings(), "\n"), "On one bulk stream, nginx was the fastest design")
}

func TestUnexpectedVerdictIsFlagged(t *testing.T) {
	r := loadStandard(t)
	for i := range r.Syscalls {
		if r.Syscalls[i].Target == "l4proxy-splice" {
			r.Syscalls[i].Verdict = "userspace"
		}
	}
	var buf bytes.Buffer
	r.Markdown(&buf, order, nil)
	assert.Contains(t, buf.String(), "userspace (**expected splice**)")
	assert.Contains(t, strings.Join(r.Findings(), "\n"), "**l4proxy-splice was `userspace`")
}

func TestRenderPlots(t *testing.T) {
	r := loadStandard(t)
	dir := t.TempDir()
	plots, err := r.RenderPlots(dir, order)
	require.NoError(t, err)
	var names []string
	for _, p := range plots {
		names = append(names, p.Name)
	}
	assert.Equal(t, []string{"throughput-1", "throughput-8", "cpu-per-gib", "conn-rate", "rss-per-conn", "latency-percentiles", "syscalls-per-mib"}, names)
	for _, p := range plots {
		f, err := os.Open(filepath.Join(dir, p.Name+".png"))
		require.NoError(t, err)
		cfg, err := png.DecodeConfig(f)
		f.Close()
		require.NoError(t, err, p.Name)
		assert.InDelta(t, 605, cfg.Width, 3, "%s is 16 cm wide at 96 dpi", p.Name)
		assert.InDelta(t, 378, cfg.Height, 3, "%s is 10 cm high at 96 dpi", p.Name)
		svg, err := os.ReadFile(filepath.Join(dir, p.Name+".svg"))
		require.NoError(t, err)
		assert.Contains(t, string(svg), "<svg")
		assert.Greater(t, len(svg), 2000, "%s.svg has content", p.Name)
	}
}

func TestTraefikFindingFollowsTheVerdict(t *testing.T) {
	for _, verdict := range []string{"userspace", "splice"} {
		r := loadStandard(t)
		r.Syscalls = append(r.Syscalls, SyscallProfile{Scenario: "syscalls-up", Target: "traefik", MiB: 256, Total: 140.5, Verdict: verdict, Spliced: 0, User: 268435456})
		r.Add("tcp-stream-1", "traefik", "throughput", 0.5*(1<<30))
		r.Add("tcp-stream-1", "traefik", "cpu_per_gib", 0.9)
		text := strings.Join(r.Findings(), "\n")
		assert.Contains(t, text, "traefik's data path was `"+verdict+"` in syscalls-up")
		assert.Contains(t, text, "against 4.8 for l4proxy-splice (`splice`)")
		assert.Contains(t, text, "On one bulk stream traefik moved 512.00 MiB/s")
	}
}
