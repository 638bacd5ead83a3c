package report

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/l4bench/l4bench/bench/stats"
)

// palette gives each design the same colour in every plot, by its place
// in the target order (Okabe-Ito colours, readable for colour-blind eyes).
var palette = []color.RGBA{
	{0x55, 0x55, 0x55, 0xff}, // direct: grey
	{0x00, 0x72, 0xb2, 0xff},
	{0x56, 0xb4, 0xe9, 0xff},
	{0x00, 0x9e, 0x73, 0xff},
	{0xd5, 0x5e, 0x00, 0xff},
	{0xe6, 0x9f, 0x00, 0xff},
	{0xf0, 0xe4, 0x42, 0xff},
	{0xcc, 0x79, 0xa7, 0xff},
	{0x88, 0x22, 0x55, 0xff},
	{0x33, 0x22, 0x88, 0xff},
	{0x99, 0x99, 0x33, 0xff},
}

// Plot is one rendered figure.
type Plot struct {
	Name  string // file name without extension
	Title string
}

// colorOf is a design's colour.
func colorOf(order []string, name string) color.Color {
	i := slices.Index(order, name)
	if i < 0 {
		i = len(order)
	}
	return palette[i%len(palette)]
}

// designOrder lists the designs present in records, in target order.
func designOrder(recs []Record, order []string) []string {
	var names []string
	for _, r := range recs {
		if !slices.Contains(names, r.Target) {
			names = append(names, r.Target)
		}
	}
	rank := func(n string) int {
		if i := slices.Index(order, n); i >= 0 {
			return i
		}
		return len(order)
	}
	sort.SliceStable(names, func(i, j int) bool { return rank(names[i]) < rank(names[j]) })
	return names
}

type errPoints struct {
	plotter.XYs
	plotter.YErrors
}

// barPlot draws one bar per design with its value written above it and
// the 95% confidence interval of its median as the error bar, and a dashed
// reference line at direct's median when direct is in the records.
func barPlot(title, ylabel, footer string, recs []Record, order []string, scale float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Add(plotter.NewGrid())
	names := designOrder(recs, order)
	var direct *Record
	var labels plotter.XYLabels
	top := 0.0
	for i, n := range names {
		var rec Record
		for _, r := range recs {
			if r.Target == n {
				rec = r
			}
		}
		if n == Direct {
			r := rec
			direct = &r
		}
		med := rec.Median * scale
		b, err := plotter.NewBarChart(plotter.Values{med}, vg.Points(18))
		if err != nil {
			return nil, err
		}
		b.XMin = float64(i)
		b.Color = colorOf(order, n)
		b.LineStyle.Width = 0
		p.Add(b)
		iv := stats.CI(rec.Samples)
		eb, err := plotter.NewYErrorBars(errPoints{plotter.XYs{{X: float64(i), Y: med}}, plotter.YErrors{{Low: med - iv.Lo*scale, High: iv.Hi*scale - med}}})
		if err != nil {
			return nil, err
		}
		p.Add(eb)
		top = max(top, iv.Hi*scale, med)
		labels.XYs = append(labels.XYs, plotter.XY{X: float64(i), Y: max(med, iv.Hi*scale)})
		labels.Labels = append(labels.Labels, shortValue(med))
	}
	if l, err := plotter.NewLabels(labels); err == nil {
		l.Offset = vg.Point{X: -vg.Points(6), Y: vg.Points(3)}
		for i := range l.TextStyle {
			l.TextStyle[i].Font.Size = vg.Points(8)
		}
		p.Add(l)
	}
	if direct != nil && len(names) > 1 {
		l, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: direct.Median * scale}, {X: float64(len(names)) - 0.5, Y: direct.Median * scale}})
		if err != nil {
			return nil, err
		}
		l.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		l.LineStyle.Color = palette[0]
		p.Add(l)
		p.Legend.Add("direct (no proxy)", l)
		p.Legend.Top = true
	}
	designAxis(p, names, footer+"\nerror bars: 95% CI of the median (the samples' range below 6 rounds)")
	p.Y.Min = 0
	p.Y.Max = top * 1.18 // room for the labels and the legend, off the frame
	return p, nil
}

// shortValue is a bar's label: three significant digits.
func shortValue(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// designAxis labels the x axis with design names, slanted to fit, and
// puts the footer (host, what the error bars are) under it.
func designAxis(p *plot.Plot, names []string, footer string) {
	p.NominalX(names...)
	p.X.Label.Text = "design\n" + footer
	p.X.Label.TextStyle.Font.Size = vg.Points(8)
	p.X.Tick.Label.Rotation = math.Pi / 6
	p.X.Tick.Label.XAlign = -0.9
	p.X.Tick.Label.YAlign = -0.5
}

// percentilePlot draws latency by percentile on log-log axes, one line per
// design, the way HDR histograms are plotted.
func percentilePlot(title string, r *Results, scenario string, order []string) (*plot.Plot, error) {
	metrics := []struct {
		name  string
		q     float64
		label string
	}{{"latency_p50", 0.5, "50%"}, {"latency_p99", 0.99, "99%"}, {"latency_p999", 0.999, "99.9%"}, {"latency_p9999", 0.9999, "99.99%"}}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (µs, log scale)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.Y.Tick.Marker = logTicks{}
	var ticks []plot.Tick
	for _, m := range metrics {
		ticks = append(ticks, plot.Tick{Value: 1 / (1 - m.q), Label: m.label})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Add(plotter.NewGrid())
	var recs []Record
	for _, rec := range r.Records {
		if rec.Scenario == scenario && rec.Metric == "latency_p50" {
			recs = append(recs, rec)
		}
	}
	for _, n := range designOrder(recs, order) {
		var xys plotter.XYs
		for _, m := range metrics {
			if rec := r.Find(scenario, n, m.name); rec != nil && rec.Median > 0 {
				xys = append(xys, plotter.XY{X: 1 / (1 - m.q), Y: rec.Median})
			}
		}
		if len(xys) == 0 {
			continue
		}
		l, pts, err := designLine(order, n, xys)
		if err != nil {
			return nil, err
		}
		p.Add(l, pts)
		p.Legend.Add(n, l)
	}
	p.Legend.Top, p.Legend.Left = true, true
	// Room above the highest line for the legend (log scale: a factor).
	if _, ymax := p.Y.Min, p.Y.Max; ymax > 0 {
		p.Y.Max = ymax * 6
	}
	return p, nil
}

// designLine is a design's line with its points, in its colour.
func designLine(order []string, name string, xys plotter.XYs) (*plotter.Line, *plotter.Scatter, error) {
	l, pts, err := plotter.NewLinePoints(xys)
	if err != nil {
		return nil, nil, err
	}
	l.Color, pts.Color = colorOf(order, name), colorOf(order, name)
	l.Width = vg.Points(1.5)
	return l, pts, nil
}

// spectrumPlot is HdrHistogram's percentile distribution plot: each
// design's latency histogram merged over the rounds, latency against
// 1/(1-p) on log axes, drawn only as far as the merged count supports (at
// least MinBeyond requests beyond each point).
func spectrumPlot(title string, r *Results, scenario string, order []string) (*plot.Plot, error) {
	qs := []float64{0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99995, 0.99999}
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "latency (µs, log scale)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.Y.Tick.Marker = logTicks{}
	var ticks []plot.Tick
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999} {
		ticks = append(ticks, plot.Tick{Value: 1 / (1 - q), Label: strconv.FormatFloat(q*100, 'f', -1, 64) + "%"})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Add(plotter.NewGrid())
	var names []string
	byName := map[string]Histogram{}
	for _, h := range r.Histograms {
		if h.Scenario == scenario && h.What == "latency" && h.Count > 0 {
			names = append(names, h.Target)
			byName[h.Target] = h
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	names = designOrder(recordsOf(names), order)
	for _, n := range names {
		hist, err := byName[n].Decode()
		if err != nil {
			return nil, fmt.Errorf("histogram of %s in %s: %w", n, scenario, err)
		}
		var xys plotter.XYs
		for _, q := range qs {
			if Reportable(hist.TotalCount(), q) {
				xys = append(xys, plotter.XY{X: 1 / (1 - q), Y: float64(hist.ValueAtQuantile(q * 100))})
			}
		}
		if len(xys) < 2 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.Color = colorOf(order, n)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(n, l)
	}
	p.Legend.Top, p.Legend.Left = true, true
	if p.Y.Max > 0 {
		p.Y.Max *= 6
	}
	return p, nil
}

// recordsOf makes placeholder records of names, to order them like the
// designs of a table.
func recordsOf(names []string) []Record {
	out := make([]Record, len(names))
	for i, n := range names {
		out[i].Target = n
	}
	return out
}

// syscallsPlot draws each design's syscalls per MiB forwarded on a log
// scale, one thick bar per design drawn from the bottom of the axis (a
// log axis has no zero), coloured by the data path strace saw, with the
// legend above the bars. The breakdown by syscall is in the report's table.
func syscallsPlot(title, footer string, profiles []SyscallProfile) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "syscalls per MiB forwarded (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Add(plotter.NewGrid())
	var names []string
	lo, hi := math.Inf(1), 0.0
	for _, sp := range profiles {
		names = append(names, sp.Target)
		if sp.Total > 0 {
			lo, hi = min(lo, sp.Total), max(hi, sp.Total)
		}
	}
	if hi == 0 {
		return nil, nil
	}
	bottom := math.Pow(10, math.Floor(math.Log10(lo)))
	p.Y.Min, p.Y.Max = bottom, hi*30 // room above the tallest bar for its label and the legend
	p.Y.Tick.Marker = logTicks{}
	colors := map[string]color.Color{"splice": palette[3], "userspace": palette[4], "mixed": palette[5], "none": palette[0]}
	shown := map[string]bool{}
	var labels plotter.XYLabels
	for i, sp := range profiles {
		v := max(sp.Total, bottom)
		l, err := plotter.NewLine(plotter.XYs{{X: float64(i), Y: bottom}, {X: float64(i), Y: v}})
		if err != nil {
			return nil, err
		}
		l.LineStyle.Width = vg.Points(16)
		c, ok := colors[sp.Verdict]
		if !ok {
			c = palette[0]
		}
		l.LineStyle.Color = c
		p.Add(l)
		if !shown[sp.Verdict] {
			shown[sp.Verdict] = true
			p.Legend.Add("data path: "+sp.Verdict, l)
		}
		labels.XYs = append(labels.XYs, plotter.XY{X: float64(i), Y: v})
		labels.Labels = append(labels.Labels, shortValue(sp.Total))
	}
	if l, err := plotter.NewLabels(labels); err == nil {
		l.Offset = vg.Point{X: -vg.Points(6), Y: vg.Points(3)}
		for i := range l.TextStyle {
			l.TextStyle[i].Font.Size = vg.Points(8)
		}
		p.Add(l)
	}
	p.Legend.Top = true
	designAxis(p, names, footer+"\none traced run per design")
	return p, nil
}

// logTicks marks 1, 2 and 5 times each power of ten in the range.
type logTicks struct{}

// Ticks implements plot.Ticker.
func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			label := ""
			if m == 1 || hi/lo < 1000 {
				label = strconv.FormatFloat(v, 'g', -1, 64)
			}
			out = append(out, plot.Tick{Value: v, Label: label})
		}
	}
	return out
}

// RenderPlots writes the plots the run's scenarios ask for (results.json's
// scenarios section) as PNG and SVG into dir, and returns them in report
// order. The report draws; what to draw is each scenario's to say.
func (r *Results) RenderPlots(dir string, order []string) ([]Plot, error) {
	var out []Plot
	save := func(p *plot.Plot, name, title string, legendBeside bool) error {
		for _, ext := range []string{"png", "svg"} {
			if err := saveFigure(p, 16*vg.Centimeter, 10*vg.Centimeter, filepath.Join(dir, name+"."+ext), legendBeside); err != nil {
				return fmt.Errorf("plot %s: %w", name, err)
			}
		}
		out = append(out, Plot{Name: name, Title: title})
		return nil
	}
	if p, err := r.overview(order); err != nil {
		return nil, err
	} else if p != nil {
		if err := save(p, "overview", p.Title.Text, false); err != nil {
			return nil, err
		}
	}
	for _, sc := range r.Scenarios {
		for _, ps := range sc.Plots {
			p, err := r.plotOf(sc.Name, ps, order)
			if err != nil {
				return nil, err
			}
			if p == nil {
				continue // nothing of it in this run
			}
			// A sweep draws a line per design across the whole width:
			// its legend goes beside the axes, never over the lines.
			if err := save(p, ps.Name, ps.Title, ps.Kind == "sweep"); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// saveFigure writes p as PNG or SVG (by path's extension). With
// legendBeside, the legend is drawn in a column right of the plot, as
// wide as its longest entry, instead of over the data.
func saveFigure(p *plot.Plot, w, h vg.Length, path string, legendBeside bool) error {
	if !legendBeside {
		return p.Save(w, h, path)
	}
	c, err := draw.NewFormattedCanvas(w, h, strings.TrimPrefix(filepath.Ext(path), "."))
	if err != nil {
		return err
	}
	dc := draw.New(c)
	legend := p.Legend
	legend.Top, legend.Left = true, true
	// The caption under the axis name (host, what the error bars are)
	// spans the whole figure: as the axis label of the narrower plot it
	// would be wider than the plot, and gonum would shrink the axes.
	label := p.X.Label.Text
	axis, caption, _ := strings.Cut(label, "\n")
	sty := p.X.Label.TextStyle
	lines := strings.Split(caption, "\n")
	lineHeight := sty.Rectangle("Mg").Max.Y * 1.2
	captionHeight := vg.Length(0)
	if caption != "" {
		captionHeight = lineHeight*vg.Length(len(lines)) + vg.Points(2)
	}
	p.X.Label.Text = axis
	p.Legend = plot.NewLegend() // no entries: drawn beside instead
	plotArea, legendArea := besideLayout(dc, &legend, captionHeight)
	p.Draw(plotArea)
	p.Legend, p.X.Label.Text = legend, label
	legend.Draw(legendArea)
	sty.XAlign = draw.XCenter
	for i, line := range lines {
		if caption == "" {
			break
		}
		dc.FillText(sty, vg.Point{X: w / 2, Y: captionHeight - lineHeight*vg.Length(i+1)}, line)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// besideLayout splits a figure into the plot's area and, right of it, a
// column as wide as the legend's longest entry, both above the caption;
// the legend's column starts below the title's line.
func besideLayout(dc draw.Canvas, legend *plot.Legend, captionHeight vg.Length) (plotArea, legendArea draw.Canvas) {
	r := legend.Rectangle(dc)
	width := r.Max.X - r.Min.X + vg.Points(8)
	plotArea = draw.Crop(dc, 0, -width, captionHeight, 0)
	legendArea = draw.Crop(dc, dc.Max.X-dc.Min.X-width+vg.Points(4), 0, captionHeight, -vg.Points(24))
	return plotArea, legendArea
}

// plotOf draws one scenario's plot, or returns nil when the run has no
// data for it.
func (r *Results) plotOf(scenario string, ps PlotSpec, order []string) (*plot.Plot, error) {
	switch ps.Kind {
	case "percentiles":
		if r.Find(scenario, Direct, "latency_p50") == nil {
			return nil, nil
		}
		p, err := percentilePlot(ps.Title, r, scenario, order)
		return r.captioned(p, "percentile", "median of the rounds at each percentile"), err
	case "spectrum":
		p, err := spectrumPlot(ps.Title, r, scenario, order)
		return r.captioned(p, "percentile (log scale of 1/(1-p))", "histograms merged over all rounds; a point only where 10 requests lie beyond it"), err
	case "syscalls":
		var profiles []SyscallProfile
		for _, sp := range r.Syscalls {
			if sp.Scenario == scenario {
				profiles = append(profiles, sp)
			}
		}
		if len(profiles) == 0 {
			return nil, nil
		}
		return syscallsPlot(ps.Title, r.footer(), profiles)
	case "sweep":
		return r.sweepPlot(scenario, ps, order)
	case "", "bars":
		var recs []Record
		for _, rec := range r.Records {
			if rec.Scenario == scenario && rec.Metric == ps.Metric && rec.Target != "direct-iperf3" {
				recs = append(recs, rec)
			}
		}
		if len(recs) == 0 {
			return nil, nil
		}
		scale := 1.0
		if ps.Divide != 0 {
			scale = 1 / ps.Divide
		}
		return barPlot(ps.Title, ps.YLabel, r.footer(), recs, order, scale)
	}
	return nil, fmt.Errorf("plot %s of %s: unknown kind %q (bars, percentiles, spectrum, syscalls, sweep)", ps.Name, scenario, ps.Kind)
}

// sweepPlot draws ps.Metric against the scenario parameter ps.X over the
// run's scenarios in the same sweep as scenario: one line per design,
// each point its median with the 95% confidence interval as error bar, on
// a log x axis with a tick at each point. A run with fewer than two points
// of the sweep draws nothing.
func (r *Results) sweepPlot(scenario string, ps PlotSpec, order []string) (*plot.Plot, error) {
	var group string
	for _, sc := range r.Scenarios {
		if sc.Name == scenario {
			group = sc.Sweep
		}
	}
	if group == "" || ps.X == "" {
		return nil, fmt.Errorf("plot %s of %s: a sweep plot needs the scenario's sweep and the plot's x", ps.Name, scenario)
	}
	type point struct {
		scenario string
		x        float64
	}
	var points []point
	for _, sc := range r.Scenarios {
		if sc.Sweep != group {
			continue
		}
		x, ok := number(sc.Params[ps.X])
		if !ok || x <= 0 {
			return nil, fmt.Errorf("plot %s: scenario %s of sweep %s has no positive parameter %q", ps.Name, sc.Name, group, ps.X)
		}
		points = append(points, point{sc.Name, x})
	}
	sort.Slice(points, func(i, j int) bool { return points[i].x < points[j].x })
	var recs []Record
	for _, pt := range points {
		for _, rec := range r.Records {
			if rec.Scenario == pt.scenario && rec.Metric == ps.Metric && rec.Target != "direct-iperf3" && len(rec.Samples) > 0 {
				recs = append(recs, rec)
			}
		}
	}
	if len(points) < 2 || len(recs) == 0 {
		return nil, nil
	}
	scale := 1.0
	if ps.Divide != 0 {
		scale = 1 / ps.Divide
	}
	p := plot.New()
	p.Title.Text = ps.Title
	p.Y.Label.Text = ps.YLabel
	p.X.Scale = plot.LogScale{}
	var ticks []plot.Tick
	for _, pt := range points {
		ticks = append(ticks, plot.Tick{Value: pt.x, Label: strconv.FormatFloat(pt.x, 'f', -1, 64)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	if ps.LogY {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, logTicks{}
	}
	p.Add(plotter.NewGrid())
	top := 0.0
	for _, n := range designOrder(recs, order) {
		var xys plotter.XYs
		var errs plotter.YErrors
		for _, pt := range points {
			rec := r.Find(pt.scenario, n, ps.Metric)
			if rec == nil || len(rec.Samples) == 0 || (ps.LogY && rec.Median <= 0) {
				continue
			}
			iv := stats.CI(rec.Samples)
			med := rec.Median * scale
			lo := iv.Lo * scale
			if ps.LogY && lo <= 0 {
				lo = med
			}
			xys = append(xys, plotter.XY{X: pt.x, Y: med})
			errs = append(errs, struct{ Low, High float64 }{med - lo, iv.Hi*scale - med})
			top = max(top, iv.Hi*scale)
		}
		if len(xys) == 0 {
			continue
		}
		l, pts, err := designLine(order, n, xys)
		if err != nil {
			return nil, err
		}
		if n == Direct {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		eb, err := plotter.NewYErrorBars(errPoints{xys, errs})
		if err != nil {
			return nil, err
		}
		eb.Color = colorOf(order, n)
		p.Add(l, pts, eb)
		p.Legend.Add(n, l)
	}
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	if !ps.LogY {
		p.Y.Min, p.Y.Max = 0, top*1.08
	}
	xlabel := ps.XLabel
	if xlabel == "" {
		xlabel = ps.X
	}
	return r.captioned(p, xlabel+" (log scale)", "medians of the rounds; error bars: 95% CI of the median (the samples' range below 6 rounds)"), nil
}

// number reads a parameter as a float (JSON gives float64, the runner
// ints).
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

// captioned puts the axis name, the host and what the plot shows under a
// plot's x axis (nil stays nil).
func (r *Results) captioned(p *plot.Plot, axis, note string) *plot.Plot {
	if p != nil {
		p.X.Label.Text = axis + "\n" + r.footer() + "\n" + note
		p.X.Label.TextStyle.Font.Size = vg.Points(8)
	}
	return p
}

// footer names the host under every plot.
func (r *Results) footer() string {
	net := ""
	if r.Host.Net != "" {
		net = fmt.Sprintf(", %s MTU %d", r.Host.Net, r.Host.MTU)
	}
	return fmt.Sprintf("%s, %d CPUs, Linux %s%s, %s", r.Host.CPUModel, r.Host.CPUs, r.Host.Kernel, net, r.Started.Format("2006-01-02"))
}

// overview is a heatmap of design × scenario: each design's share of
// direct's figure on the scenario's headline metric (1 = no cost over no
// proxy; for a metric where lower is better, direct's figure over the
// design's). It is drawn when at least two scenarios name a headline and
// measured direct on it.
func (r *Results) overview(order []string) (*plot.Plot, error) {
	type col struct{ scenario, metric string }
	var cols []col
	var recs []Record
	for _, sc := range r.Scenarios {
		if sc.Headline == "" || r.Find(sc.Name, Direct, sc.Headline) == nil {
			continue
		}
		cols = append(cols, col{sc.Name, sc.Headline})
		for _, rec := range r.Records {
			if rec.Scenario == sc.Name && rec.Metric == sc.Headline && IsDesign(rec.Target) && rec.Target != Direct {
				recs = append(recs, rec)
			}
		}
	}
	if len(cols) < 2 || len(recs) == 0 {
		return nil, nil
	}
	designs := designOrder(recs, order)
	p := plot.New()
	p.Title.Text = "Share of direct's figure, by scenario (headline metric; 1.00 = no cost)"
	var labels plotter.XYLabels
	for i, c := range cols {
		direct := r.Find(c.scenario, Direct, c.metric)
		for j, d := range designs {
			rec := r.Find(c.scenario, d, c.metric)
			if rec == nil || rec.Median <= 0 || direct.Median <= 0 {
				continue
			}
			share := rec.Median / direct.Median
			if rec.Better == "lower" {
				share = direct.Median / rec.Median
			}
			x, y := float64(i), float64(len(designs)-1-j)
			cell, err := plotter.NewPolygon(plotter.XYs{{X: x - 0.5, Y: y - 0.5}, {X: x + 0.5, Y: y - 0.5}, {X: x + 0.5, Y: y + 0.5}, {X: x - 0.5, Y: y + 0.5}})
			if err != nil {
				return nil, err
			}
			cell.Color = shareColor(share)
			cell.LineStyle.Width = vg.Points(0.5)
			cell.LineStyle.Color = color.White
			p.Add(cell)
			labels.XYs = append(labels.XYs, plotter.XY{X: x, Y: y})
			labels.Labels = append(labels.Labels, fmt.Sprintf("%.2f", share))
		}
	}
	if l, err := plotter.NewLabels(labels); err == nil {
		l.Offset = vg.Point{X: -vg.Points(8), Y: -vg.Points(3)}
		for i := range l.TextStyle {
			l.TextStyle[i].Font.Size = vg.Points(7)
		}
		p.Add(l)
	}
	var xt, yt []plot.Tick
	for i, c := range cols {
		xt = append(xt, plot.Tick{Value: float64(i), Label: c.scenario + "\n" + c.metric})
	}
	for j, d := range designs {
		yt = append(yt, plot.Tick{Value: float64(len(designs) - 1 - j), Label: d})
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.ConstantTicks(xt), plot.ConstantTicks(yt)
	p.X.Tick.Label.Font.Size, p.Y.Tick.Label.Font.Size = vg.Points(7), vg.Points(8)
	p.X.Tick.Label.Rotation = math.Pi / 8
	p.X.Tick.Label.XAlign = -0.9
	p.X.Min, p.X.Max = -0.5, float64(len(cols))-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(len(designs))-0.5
	p.X.Label.Text = r.footer() + "\nmedians of the rounds; darker is further from direct"
	p.X.Label.TextStyle.Font.Size = vg.Points(8)
	return p, nil
}

// shareColor shades a share of direct's figure: near 1 pale, near 0 dark.
func shareColor(share float64) color.Color {
	t := math.Max(0, math.Min(1, share))
	return color.RGBA{R: uint8(0x20 + (0xf0-0x20)*t), G: uint8(0x40 + (0xf4-0x40)*t), B: uint8(0x90 + (0xfa-0x90)*t), A: 0xff}
}
