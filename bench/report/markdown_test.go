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
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/l4bench/l4bench/bench/stats"
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
	// Where l4proxy trails is said, with the figures and the test.
	assert.Contains(t, text, "tcp-crr, conn_rate: l4proxy's best, l4proxy-splice at 4308.7 conn/s, **trails** haproxy-copy 6051.1 conn/s, p=0.032")
	assert.Contains(t, text, "tcp-idle, rss_per_conn: l4proxy's best, l4proxy-pooled at 14.5 KiB, **trails** haproxy-copy 3.3 KiB")
	// A lead without significance is a tie.
	assert.Contains(t, text, "tcp-rr, rps: l4proxy's best, l4proxy-splice at 7611.8 req/s, ties within noise with haproxy-copy")
	assert.Contains(t, text, "haproxy-splice-auto, which declares no data path, was `mixed` in syscalls-up", "a scenario's own findings are listed")
	assert.NotContains(t, text, "fastest", "no winner word without a test")
	// 2.000 against 2.001 fds per connection is significant, and invisible.
	assert.Contains(t, text, "differs significantly but not at the precision shown from haproxy-splice 2.00, p=0.008")
	assert.NotContains(t, text, "leads haproxy-splice 2.00")

	// Change the numbers: the sentences follow.
	for i := range r.Records {
		rec := &r.Records[i]
		if rec.Scenario == "tcp-stream-1" && rec.Metric == "throughput" && rec.Target == "nginx" {
			for j := range rec.Samples {
				rec.Samples[j] *= 100
			}
			rec.Median *= 100
		}
	}
	assert.Contains(t, strings.Join(r.Findings(), "\n"), "tcp-stream-1, throughput: l4proxy's best, l4proxy-splice at 1.78 GiB/s, **trails** nginx")
}

// TestBestNeedsSignificance: the best design is marked only when it beats
// every other design with significance; direct never wins.
func TestBestNeedsSignificance(t *testing.T) {
	rec := func(target string, xs ...float64) Record {
		return Record{Target: target, Metric: "throughput", Better: "higher", Samples: xs, Median: stats.Median(xs)}
	}
	tests := []struct {
		name string
		recs []Record
		want string
	}{
		{"clear winner", []Record{rec("a", 10, 11, 12, 13, 14), rec("b", 1, 2, 3, 4, 5), rec("c", 2, 3, 4, 5, 6)}, "a"},
		{"a lead within noise", []Record{rec("a", 10, 11, 12, 13, 14), rec("b", 9, 10, 11, 12, 13.5)}, ""},
		{"three rounds cannot decide", []Record{rec("a", 10, 11, 12), rec("b", 1, 2, 3)}, ""},
		{"direct is never best", []Record{rec("direct", 100, 101, 102, 103, 104), rec("a", 10, 11, 12, 13, 14), rec("b", 1, 2, 3, 4, 5)}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assert.Equal(t, tt.want, Best(tt.recs)) })
	}
}

// TestLatencyBelowDirect: no proxy beats no proxy; a latency below
// direct's is a tie unless significant, then it is flagged.
func TestLatencyBelowDirect(t *testing.T) {
	direct := &Record{Target: Direct, Metric: "latency_p50", Unit: "us", Samples: []float64{100, 101, 102, 103, 104}, Median: 102}
	tie := &Record{Target: "a", Metric: "latency_p50", Unit: "us", Samples: []float64{95, 99, 101, 103, 98}, Median: 99}
	assert.Contains(t, VsDirect(tie, direct), "tie")
	below := &Record{Target: "a", Metric: "latency_p50", Unit: "us", Samples: []float64{50, 51, 52, 53, 54}, Median: 52}
	assert.Contains(t, VsDirect(below, direct), "below direct")
	above := &Record{Target: "a", Metric: "latency_p50", Unit: "us", Samples: []float64{200, 201, 202, 203, 204}, Median: 202}
	assert.Equal(t, "1.98x", VsDirect(above, direct))

	// The same holds where higher is better: a proxy faster than no proxy.
	tput := func(target string, xs ...float64) *Record {
		return &Record{Target: target, Metric: "throughput", Unit: "bytes/s", Better: "higher", Samples: xs, Median: xs[2]}
	}
	d := tput(Direct, 100, 101, 102, 103, 104)
	assert.Equal(t, "0.51x", VsDirect(tput("a", 50, 51, 52, 53, 54), d))
	assert.Contains(t, VsDirect(tput("a", 99, 103, 104, 105, 100), d), "tie")
	assert.Contains(t, VsDirect(tput("a", 200, 201, 202, 203, 204), d), "**1.98x: above direct, p=0.008; check the harness**")
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
	assert.Equal(t, []string{"overview", "throughput-1", "cpu-per-gib", "throughput-8", "latency-percentiles", "conn-rate", "rss-per-conn", "syscalls-per-mib"}, names, "the overview, then the plots the scenarios ask for, in their order")
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

// What the catalogue says of a scenario, its caveat included, stands under
// that scenario's heading, before its tables, and nowhere else.
func TestScenarioCaveatIsShownAboveItsTables(t *testing.T) {
	r := loadStandard(t)
	r.Scenarios = []ScenarioInfo{
		{Name: "tcp-rr", Kind: "rr", Answers: "Closed-loop request/response.", Caveat: "the floor, not the hop."},
		{Name: "tcp-crr", Kind: "crr", Answers: "New connections per second."},
	}
	var buf bytes.Buffer
	r.Markdown(&buf, order, nil)
	text := buf.String()
	rr := strings.Index(text, "\n### tcp-rr\n")
	require.Positive(t, rr)
	section := text[rr+1:]
	section = section[:strings.Index(section[4:], "\n### ")+4]
	assert.Contains(t, section, "\nClosed-loop request/response.\n")
	assert.Contains(t, section, "\n**Read with care:** the floor, not the hop.\n")
	assert.Less(t, strings.Index(section, "Read with care"), strings.Index(section, "| design |"))
	assert.Equal(t, 1, strings.Count(text, "Read with care"), "only tcp-rr has a caveat")
	assert.Contains(t, text, "\nNew connections per second.\n")
}

func TestColumnFormatUsesOneUnit(t *testing.T) {
	tests := []struct {
		unit   string
		values []float64
		v      float64
		want   string
	}{
		{"bytes/s", []float64{1.05 * (1 << 30), 1021 * (1 << 20)}, 1021 * (1 << 20), "1.00 GiB/s"},
		{"bytes/s", []float64{700 * (1 << 20)}, 700 * (1 << 20), "700.00 MiB/s"},
		{"KiB", []float64{125464, 3.3}, 3.3, "0.0 MiB"},
		{"KiB", []float64{14.5, 3.3}, 3.3, "3.3 KiB"},
		{"us", []float64{100}, 42, "42 µs"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, ColumnFormat(tt.unit, tt.values)(tt.v), "%s %v", tt.unit, tt.values)
	}
}

// results.csv has one row per sample, with its round.
func TestWriteCSV(t *testing.T) {
	r := &Results{Records: []Record{{Scenario: "s", Target: "direct", Metric: "throughput", Unit: "bytes/s", Better: "higher",
		Samples: []float64{2e9, 1.5e9}, Rounds: []int{2, 1}}}}
	var buf bytes.Buffer
	require.NoError(t, r.WriteCSV(&buf))
	assert.Equal(t, "scenario,target,metric,unit,better,round,value\ns,direct,throughput,bytes/s,higher,1,1.5e+09\ns,direct,throughput,bytes/s,higher,2,2e+09\n", buf.String())
}

// A sweep plot gathers the run's scenarios of one sweep, ordered by the
// swept parameter; one point is no sweep, and a point without the
// parameter is an error naming it.
func TestSweepPlot(t *testing.T) {
	spec := PlotSpec{Name: "tput-vs-streams", Title: "t", Kind: "sweep", Metric: "throughput", X: "streams", YLabel: "GiB/s", Divide: 1 << 30}
	build := func(points map[string]any) *Results {
		r := sample()
		r.Records = nil
		first := true
		for name, x := range points {
			info := ScenarioInfo{Name: name, Kind: "stream", Sweep: "streams", Params: map[string]any{"streams": x}}
			if first {
				info.Plots, first = []PlotSpec{spec}, false
			}
			r.Scenarios = append(r.Scenarios, info)
			for _, tg := range []string{"direct", "l4proxy-splice"} {
				for _, v := range []float64{1e9, 1.1e9, 1.2e9} {
					r.Add(name, tg, "throughput", v)
				}
			}
		}
		return r
	}
	tests := []struct {
		name   string
		points map[string]any
		drawn  bool
		err    string
	}{
		{"three points", map[string]any{"s-1": 1, "s-8": 8.0, "s-64": 64}, true, ""},
		{"one point", map[string]any{"s-1": 1}, false, ""},
		{"a point without the parameter", map[string]any{"s-1": 1, "s-8": nil}, false, `scenario s-8 of sweep streams has no positive parameter "streams"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			plots, err := build(tt.points).RenderPlots(dir, order)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			if !tt.drawn {
				assert.Empty(t, plots)
				assert.NoFileExists(t, filepath.Join(dir, "tput-vs-streams.png"))
				return
			}
			require.Len(t, plots, 1)
			assert.FileExists(t, filepath.Join(dir, "tput-vs-streams.png"))
			svg, err := os.ReadFile(filepath.Join(dir, "tput-vs-streams.svg"))
			require.NoError(t, err)
			for _, tick := range []string{">1<", ">8<", ">64<", ">direct<", ">l4proxy-splice<"} {
				assert.Contains(t, string(svg), tick, "a tick or legend entry for each point and design")
			}
			assert.Contains(t, string(svg), "medians of the rounds", "the caption is drawn")
		})
	}
}

// Two runs side by side: the figures present in both, each run's own
// ratio to direct, and a change called significant only when it is.
func TestCompare(t *testing.T) {
	a, b := sample(), sample()
	a.Host.Net, a.Host.MTU = "loopback", 65536
	b.Host.Net, b.Host.MTU = "veth", 1500
	b.Records = nil
	for _, v := range []float64{1.5e9, 1.6e9, 1.55e9, 1.58e9, 1.52e9} {
		b.Add("tcp-stream-1", "direct", "throughput", v)
	}
	for _, v := range []float64{1.1e9, 1.2e9, 1.15e9} {
		b.Add("tcp-stream-1", "l4proxy-splice", "throughput", v) // same samples as a's
	}
	rows := Compare(a, b, nil, order)
	require.Len(t, rows, 2, "cpu_per_gib is only in A")
	assert.Equal(t, "direct", rows[0].Target)
	assert.Equal(t, "l4proxy-splice", rows[1].Target)
	assert.Equal(t, "0.37x", rows[1].VsDirectA)
	assert.Equal(t, "0.74x", rows[1].VsDirectB)
	var buf bytes.Buffer
	PrintComparison(&buf, a, b, rows)
	out := buf.String()
	assert.Contains(t, out, "A: loopback MTU 65536")
	assert.Contains(t, out, "B: veth MTU 1500")
	assert.Contains(t, out, "| l4proxy-splice | 1.07 GiB/s | 1.07 GiB/s | tie (1.00x) | 1.000 | 0.37x | 0.74x |")
	assert.Contains(t, out, "| direct | 2.89 GiB/s | 1.44 GiB/s | **0.50x** | 0.036 | - | - |", "5 samples all below 3: significant")
	assert.Empty(t, Compare(a, b, []string{"tcp-crr"}, order))
}

// A sweep's legend gets a column of its own right of the plot, as wide as
// its longest entry, so that no entry is drawn over the lines.
func TestBesideLayoutKeepsTheLegendOffThePlot(t *testing.T) {
	c := vgimg.New(16*vg.Centimeter, 10*vg.Centimeter)
	dc := draw.New(c)
	for _, names := range [][]string{{"direct"}, {"direct", "l4proxy-splice", "haproxy-splice-auto", "a-design-with-a-long-name@build"}} {
		legend := plot.NewLegend()
		legend.TextStyle.Font.Size = vg.Points(8)
		for _, n := range names {
			legend.Add(n)
		}
		plotArea, legendArea := besideLayout(dc, &legend, vg.Points(20))
		assert.GreaterOrEqual(t, legendArea.Min.X, plotArea.Max.X, "%v: the legend's column starts where the plot ends", names)
		r := legend.Rectangle(legendArea)
		assert.LessOrEqual(t, r.Max.X-r.Min.X, legendArea.Max.X-legendArea.Min.X, "%v: the longest entry fits its column", names)
		assert.Equal(t, dc.Max.X, legendArea.Max.X, "the column ends at the figure's edge")
		assert.Greater(t, plotArea.Max.X-plotArea.Min.X, (dc.Max.X-dc.Min.X)/2, "%v: the plot keeps most of the width", names)
		assert.Equal(t, vg.Points(20), plotArea.Min.Y, "room for the caption under the plot")
	}
}

// TestRatioByRound: a comparison carries the ratio of the two designs
// paired by round, so a steady 10% gap shows even where the machine's
// drift from round to round is larger than the gap; its interval is a
// range when the rounds are too few for 95%, and it is left out when it
// cannot be formed.
func TestRatioByRound(t *testing.T) {
	rec := func(target string, rounds []int, xs ...float64) Record {
		return Record{Target: target, Metric: "conn_rate", Unit: "conn/s", Better: "higher", Samples: xs, Rounds: rounds, Median: stats.Median(xs)}
	}
	drift := []float64{1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000}
	scaled := func(f float64, xs []float64) []float64 {
		out := make([]float64, len(xs))
		for i, x := range xs {
			out[i] = x * f
		}
		return out
	}
	eight := []int{1, 2, 3, 4, 5, 6, 7, 8}
	tests := []struct {
		name string
		a, b Record
		want string
	}{
		{"drift cancels", rec("a", eight, scaled(0.9, drift)...), rec("b", eight, drift...), ", ratio by round 0.900 (95% CI 0.900–0.900)"},
		{"rounds pair by number, not position", rec("a", []int{3, 1, 2}, 30, 10, 20), rec("b", []int{1, 2, 3}, 10, 20, 30), ", ratio by round 1.000 (range of 3 rounds 1.000–1.000)"},
		{"a missing round is skipped", rec("a", []int{1, 2, 4}, 10, 20, 40), rec("b", []int{1, 2, 3}, 20, 20, 20), ", ratio by round 0.750 (range of 2 rounds 0.500–1.000)"},
		{"one shared round is no ratio", rec("a", []int{1, 2}, 10, 20), rec("b", []int{2, 3}, 20, 20), ""},
		{"a zero figure is no ratio", rec("a", []int{1, 2}, 10, 20), rec("b", []int{1, 2}, 0, 20), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assert.Equal(t, tt.want, pairedRatio(tt.a, tt.b)) })
	}
	// Mann-Whitney sees only the drift here and calls it a tie; the ratio
	// says how far apart the two are.
	r := &Results{Records: []Record{rec("l4proxy-loop", eight, scaled(0.9, drift)...), rec("nginx", eight, drift...)}}
	for i := range r.Records {
		r.Records[i].Scenario = "tcp-crr"
	}
	assert.Equal(t, []string{"tcp-crr, conn_rate: l4proxy's best, l4proxy-loop at 4050.0 conn/s, ties within noise with nginx 4500.0 conn/s, p=0.721, ratio by round 0.900 (95% CI 0.900–0.900)."}, r.Standing())
}
