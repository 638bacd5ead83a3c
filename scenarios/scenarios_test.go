package scenarios

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/l4bench/l4bench/bench/report"
	"github.com/l4bench/l4bench/bench/target"
	"github.com/l4bench/l4bench/internal/testbin"

	"github.com/l4bench/l4bench/internal/badinput"
)

func TestMain(m *testing.M) {
	os.Exit(testbin.Run(m, func(path string) { target.L4ProxyPath = path }))
}

func TestCatalogue(t *testing.T) {
	c, err := Load()
	require.NoError(t, err)
	for _, p := range []string{"quick", "standard", "full"} {
		scs, err := c.Select(p, nil)
		require.NoError(t, err)
		assert.NotEmpty(t, scs, p)
		for _, s := range scs {
			assert.NotEmpty(t, s.Answers, "%s says what it answers", s.Name)
		}
	}
	_, err = c.Select("quick", []string{"tcp-stream-9"})
	assert.ErrorContains(t, err, `--scenario: unknown scenario "tcp-stream-9" (choices: tcp-stream-1,`)
	_, err = c.Select("fast", nil)
	assert.ErrorContains(t, err, `--profile: unknown profile "fast" (choices: quick, standard, full)`)
}

func TestCatalogueRejectsMistakes(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown kind", "profiles: {q: {count: 1}}\nscenarios: [{name: a, kind: ping, profiles: [q]}]", `a: unknown kind "ping"`},
		{"unknown profile", "profiles: {q: {count: 1}}\nscenarios: [{name: a, kind: rr, profiles: [z]}]", `a: unknown profile "z"`},
		{"duplicate", "profiles: {q: {count: 1}}\nscenarios: [{name: a, kind: rr}, {name: a, kind: rr}]", "a listed twice"},
		{"a sweep of two kinds", "profiles: {q: {count: 1}}\nscenarios: [{name: a, kind: stream, sweep: s}, {name: b, kind: rr, sweep: s}]", "b: sweep s mixes kinds stream and rr"},
		{"a sweep plot without its parameter", "profiles: {q: {count: 1}}\nscenarios: [{name: a, kind: stream, sweep: s, plots: [{name: p, title: t, kind: sweep, metric: throughput}]}]",
			"a: plot p: a sweep plot needs the scenario's sweep, and the plot's x and metric"},
		{"a sweep over a parameter its kind lacks", "profiles: {q: {count: 1}}\nscenarios: [{name: a, kind: stream, sweep: s, plots: [{name: p, title: t, kind: sweep, metric: throughput, x: rate}]}]",
			"a: plot p: x rate is not a parameter of a stream scenario"},
		{"a parameter its kind does not read", "profiles: {q: {count: 1}}\nscenarios: [{name: a, kind: stream, rate: 100}]",
			"line 2: a: rate is not a parameter of a stream scenario (its parameters: streams, direction, iperf3)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseCatalogue([]byte(tt.yaml))
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func TestParseCPUList(t *testing.T) {
	// Whatever this machine's CPU count: all of them parse, one more does not.
	n := runtime.NumCPU()
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	got, err := parseCPUList(fmt.Sprintf("0-%d", n-1))
	require.NoError(t, err)
	assert.Equal(t, all, got)
	got, err = parseCPUList("0")
	require.NoError(t, err)
	assert.Equal(t, []int{0}, got)
	_, err = parseCPUList("x")
	assert.ErrorContains(t, err, "not a CPU list")
	_, err = parseCPUList(strconv.Itoa(n))
	assert.ErrorContains(t, err, fmt.Sprintf("CPU %d does not exist", n))
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		addr        string
		allow, veth bool
		err         string
	}{
		{"127.0.0.2:80", false, false, ""},
		{"[::1]:80", false, false, ""},
		{"192.0.2.1:80", false, false, "not a loopback address (pass --allow-remote"},
		{"192.0.2.1:80", true, false, ""},
		{"198.18.1.2:80", false, false, "not a loopback address"},
		{"198.18.1.2:80", false, true, ""},
		{"192.0.2.1:80", false, true, "neither loopback nor in the run's own namespaces (198.18.0.0/15)"},
	}
	for _, tt := range tests {
		err := checkLoopback(tt.addr, tt.allow, tt.veth)
		if tt.err == "" {
			assert.NoError(t, err, tt.addr)
		} else {
			assert.ErrorContains(t, err, tt.err, tt.addr)
		}
	}
}

func TestBadInputBeforeAnythingStarts(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"unknown target", Options{Targets: []string{"envoy"}}, `--target: unknown target "envoy"`},
		{"unknown scenario", Options{Scenarios: []string{"x"}}, `unknown scenario "x"`},
		{"unwritable out", Options{Out: "/proc/l4bench"}, "--out: cannot create"},
		{"no CPU left", Options{ProxyCPUs: "0-1"}, "leaves no CPU"},
		{"peer-bin without a path", Options{PeerBins: []string{"haproxy"}}, `--peer-bin "haproxy": want NAME=PATH`},
		{"peer-bin for an unknown peer", Options{PeerBins: []string{"envoy=/bin/true"}}, `--peer-bin "envoy=/bin/true": unknown peer "envoy" (choices: haproxy, nginx, socat)`},
		{"peer-bin not executable", Options{PeerBins: []string{"haproxy=/etc/passwd"}}, "haproxy: /etc/passwd is not an executable file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.Out == "" {
				tt.opts.Out = t.TempDir()
			}
			_, _, err := Run(context.Background(), tt.opts)
			var bad *badinput.Error
			require.True(t, errors.As(err, &bad), "bad input error, got %v", err)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

// TestTinyRun runs a tiny profile against direct and l4proxy-splice and
// checks the file it wrote: records present, samples per repetition,
// ratios sane. Speed is not asserted.
func TestTinyRun(t *testing.T) {
	out := t.TempDir()
	res, dir, err := Run(context.Background(), Options{
		Profile: "quick", Count: 2, Out: out, Targets: []string{"l4proxy-splice"},
		Scenarios: []string{"tcp-stream-1", "tcp-rr", "tcp-rr-open", "tcp-crr", "tcp-idle", "udp-echo", "udp-capacity"},
	})
	require.NoError(t, err)
	back, err := report.Load(filepath.Join(dir, "results.json"))
	require.NoError(t, err)
	assert.Equal(t, len(res.Records), len(back.Records))
	assert.FileExists(t, filepath.Join(dir, "l4proxy-splice.yaml"), "the design's config is saved with the results")
	for _, plot := range []string{"throughput-1.png", "conn-rate.png", "latency-spectrum.png", "latency-spectrum-udp.png", "results.csv"} {
		assert.FileExists(t, filepath.Join(dir, plot), "drawn from the run's own data")
	}

	want := map[string][]string{
		"tcp-stream-1": {"throughput"},
		"tcp-rr":       {"rps", "latency_p50", "latency_p99"},
		"tcp-rr-open":  {"latency_p50", "send_lateness_p50", "send_lateness_p99"},
		"tcp-crr":      {"conn_rate", "latency_p50", "connect_p50"},
		"udp-echo":     {"udp_loss", "latency_p50", "send_lateness_p99"},
		"udp-capacity": {"udp_capacity_pps"},
	}
	for scenario, metrics := range want {
		for _, m := range metrics {
			for _, tg := range []string{"direct", "l4proxy-splice"} {
				rec := back.Find(scenario, tg, m)
				if assert.NotNil(t, rec, "%s %s %s", scenario, tg, m) {
					assert.Len(t, rec.Samples, 2, "one sample per repetition")
				}
			}
		}
	}
	cpu := back.Find("tcp-stream-1", "l4proxy-splice", "cpu_per_gib")
	require.NotNil(t, cpu)
	assert.Positive(t, cpu.Median)
	for _, m := range []string{"rss_peak", "rss_steady", "threads"} {
		rec := back.Find("tcp-stream-1", "l4proxy-splice", m)
		if assert.NotNil(t, rec, m) {
			assert.Positive(t, rec.Median, m)
		}
	}
	assert.Nil(t, back.Find("tcp-stream-1", "direct", "rss_peak"), "direct has no process of its own")
	// What is needed to rerun it: the network settings, the l4proxy build,
	// each scenario's parameters as they ran.
	assert.Contains(t, back.Host.Sysctls, "net.core.somaxconn")
	assert.Contains(t, back.Host.L4Proxy, "github.com/l4bench/l4bench")
	for _, sc := range back.Scenarios {
		if sc.Name == "tcp-stream-1" {
			assert.EqualValues(t, 1, sc.Params["streams"])
			assert.Equal(t, "up", sc.Params["direction"])
			assert.NotEmpty(t, sc.Params["duration"])
			assert.NotContains(t, sc.Params, "rate", "only its kind's parameters")
		}
	}
	assert.Nil(t, back.Find("tcp-idle", "direct", "rss_per_conn"), "direct has no process of its own")
	require.NotNil(t, back.Find("tcp-idle", "direct", "slab_per_conn"), "direct's slab: the client's and backend's sockets")
	own := back.Find("tcp-idle", "l4proxy-splice", "slab_own_per_conn")
	if assert.NotNil(t, own) {
		assert.Equal(t, []int{1, 2}, own.Rounds)
		sys := back.Find("tcp-idle", "l4proxy-splice", "slab_per_conn").ByRound()
		dir := back.Find("tcp-idle", "direct", "slab_per_conn").ByRound()
		assert.InDelta(t, sys[1]-dir[1], own.Samples[0], 1e-9, "the design's share is its figure minus direct's in the same round")
	}
	idle := back.Find("tcp-idle", "l4proxy-splice", "fds_per_conn")
	require.NotNil(t, idle)
	assert.InDelta(t, 6, idle.Median, 0.5, "splice holds two sockets and two pipes per idle connection")

	d := back.Find("tcp-stream-1", "direct", "throughput")
	p := back.Find("tcp-stream-1", "l4proxy-splice", "throughput")
	// Bytes crossed the proxy at all (a timed bound on speed would be a
	// performance target; those live in benchmarks). No proxy beats no
	// proxy: the report flags any that does with significance.
	assert.Greater(t, p.Median/d.Median, 0.02, "the proxy forwarded at a plausible rate")
	assert.NotContains(t, report.VsDirect(p, d), "check the harness")
	for _, tg := range []string{"direct", "l4proxy-splice"} {
		// The connect alone ends before the exchange does.
		assert.Less(t, back.Find("tcp-crr", tg, "connect_p50").Median, back.Find("tcp-crr", tg, "latency_p50").Median, tg)
		assert.Positive(t, back.Find("udp-capacity", tg, "udp_capacity_pps").Median, tg)
	}
	// Percentiles: only those with 10 requests beyond them, per round; the
	// histograms merged over the rounds, with their encoding.
	for _, rec := range back.Records {
		if rec.Scenario == "tcp-rr-open" && rec.Metric == "latency_p9999" {
			t.Errorf("tcp-rr-open: p99.99 of a few hundred requests a round was recorded: %+v", rec)
		}
	}
	var merged int
	for _, h := range back.Histograms {
		if h.Scenario != "tcp-rr-open" {
			continue
		}
		merged++
		dec, err := h.Decode()
		require.NoError(t, err)
		assert.Equal(t, h.Count, dec.TotalCount(), "the encoding holds every request")
		assert.Contains(t, h.Percentiles, "p50")
		assert.NotContains(t, h.Percentiles, "p9999", "%d requests cannot support p99.99", h.Count)
	}
	assert.Equal(t, 2, merged, "one merged histogram per design")
	loss := back.Find("udp-echo", "l4proxy-splice", "udp_loss")
	assert.GreaterOrEqual(t, loss.Median, 0.0)
	assert.LessOrEqual(t, loss.Median, 1.0)
}

func TestLatenessCheckFlagsANoticeableShare(t *testing.T) {
	tests := []struct {
		name             string
		lateness, median float64
		flagged          bool
	}{
		{"on time", 1, 100, false},
		{"just under", 9.9, 100, false},
		{"a noticeable share", 25, 100, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &report.Results{}
			res.Add("udp-echo", "nginx", "latency_p50", tt.median)
			res.Add("udp-echo", "nginx", "send_lateness_p99", tt.lateness)
			notes := latenessCheck(res)
			if tt.flagged {
				require.Len(t, notes, 1)
				assert.Contains(t, notes[0], "udp-echo / nginx")
			} else {
				assert.Empty(t, notes)
			}
		})
	}
}

// TestRoundOrderDealsFirstPlacesEvenly: over the rounds every design runs
// first as often as any other (to within one), each round holds every
// design once, and neighbours change.
func TestRoundOrderDealsFirstPlacesEvenly(t *testing.T) {
	designs := []string{"direct", "a", "b", "c", "d", "e", "f"}
	for _, rounds := range []int{5, 7, 10, 21} {
		rng := rand.New(rand.NewPCG(uint64(rounds), 0))
		var deck []string
		firsts := map[string]int{}
		orders := map[string]bool{}
		for range rounds {
			order := roundOrder(designs, rng, &deck)
			assert.ElementsMatch(t, designs, order)
			firsts[order[0]]++
			orders[strings.Join(order, ",")] = true
		}
		lo, hi := rounds, 0
		for _, d := range designs {
			lo, hi = min(lo, firsts[d]), max(hi, firsts[d])
		}
		assert.LessOrEqual(t, hi-lo, 1, "%d rounds: first places %v", rounds, firsts)
		assert.Len(t, orders, rounds, "%d rounds: every round's order differs", rounds)
	}
}

// A requested design that cannot run, fails to start or dies mid-run is a
// failure of the run, named with why, never a quiet note.
func TestRunFailsSafe(t *testing.T) {
	built := target.L4ProxyPath
	t.Cleanup(func() { target.L4ProxyPath = built })
	script := func(body string) string {
		p := filepath.Join(t.TempDir(), "l4proxy")
		require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755))
		return p
	}
	tests := []struct {
		name, bin, want string
		scenarioWide    bool // the failure names a scenario and round
	}{
		{"not installed", filepath.Join(t.TempDir(), "missing"), "cannot run here", false},
		{"fails to start", script(`echo "bad config" >&2; exit 3`), "failed to start", false},
		{"dies mid-run", script(`exec timeout -s KILL 1.2 ` + built + ` "$@"`), "died", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target.L4ProxyPath = tt.bin
			res, _, err := Run(context.Background(), Options{
				Profile: "quick", Count: 4, Out: t.TempDir(), Targets: []string{"l4proxy-splice"},
				Scenarios: []string{"tcp-rr"},
			})
			require.NoError(t, err, "direct still ran, so results were written")
			require.NotEmpty(t, res.Failures)
			// The first failure may be the sample the death cost; one of
			// them says what happened.
			i := slices.IndexFunc(res.Failures, func(f report.Failure) bool { return strings.Contains(f.Why, tt.want) })
			require.GreaterOrEqual(t, i, 0, "no failure says %q: %v", tt.want, res.Failures)
			f := res.Failures[i]
			assert.Equal(t, "l4proxy-splice", f.Target)
			if tt.scenarioWide {
				assert.Equal(t, "tcp-rr", f.Scenario)
				assert.Positive(t, f.Round)
			}
			rec := res.Find("tcp-rr", "l4proxy-splice", "rps")
			if rec != nil {
				assert.Less(t, len(rec.Samples), 4, "fewer samples than asked")
			}
		})
	}
}

// What strace saw is said where a reader could not guess it: the path of
// a design that declares none, and l4proxy-splice's feature variants.
func TestSyscallFindingsComeFromTheProfiles(t *testing.T) {
	p := &plan{}
	p.syscallFindings("syscalls-up", []report.SyscallProfile{
		{Target: "haproxy-splice-auto", Verdict: "userspace", Spliced: 0, User: 1 << 20},
		{Target: "l4proxy-splice", Verdict: "splice", Expected: "splice"},
		{Target: "l4proxy-splice+proxy-v2", Verdict: "splice", Expected: "splice"},
		{Target: "l4proxy-splice+all", Verdict: "splice", Expected: "splice"},
	})
	assert.Equal(t, []string{
		"haproxy-splice-auto, which declares no data path, was `userspace` in syscalls-up (0 bytes spliced, 1048576 through user space).",
		"l4proxy-splice still spliced in syscalls-up with every feature that could wrap its conns turned on (proxy-v2, all).",
	}, p.findings["syscalls-up"])

	p = &plan{}
	p.syscallFindings("syscalls-up", []report.SyscallProfile{
		{Target: "l4proxy-splice+proxy-v2", Verdict: "userspace", Expected: "splice"},
	})
	assert.Empty(t, p.findings["syscalls-up"], "a variant that stopped splicing is a failure, not a finding")
}

// Every plot the catalogue asks for names a kind the report can draw and,
// for bars, a metric.
func TestCataloguePlotsAreDrawable(t *testing.T) {
	c, err := Load()
	require.NoError(t, err)
	n := 0
	for _, s := range c.Scenarios {
		for _, ps := range s.Plots {
			n++
			assert.NotEmpty(t, ps.Name, s.Name)
			assert.NotEmpty(t, ps.Title, s.Name)
			assert.Contains(t, []string{"", "bars", "percentiles", "spectrum", "syscalls", "sweep"}, ps.Kind, "%s / %s", s.Name, ps.Name)
			if ps.Kind == "" || ps.Kind == "bars" || ps.Kind == "sweep" {
				assert.NotEmpty(t, ps.Metric, "%s / %s", s.Name, ps.Name)
			}
		}
	}
	assert.Equal(t, 14, n, "the fourteen plots of the catalogue")
}

// A design brought as a file is a target like any other: measured in the
// timed scenarios, traced with its declared data path checked, skipped
// (with its reason) where it lacks UDP, its config saved with the results.
func TestDesignFilesEndToEnd(t *testing.T) {
	if _, err := exec.LookPath("socat"); err != nil {
		t.Skip("socat is not installed (scripts/install-peers.sh)")
	}
	// The example runs the l4proxy this test built, found in PATH.
	t.Setenv("PATH", filepath.Dir(target.L4ProxyPath)+":"+os.Getenv("PATH"))
	l4, err := filepath.Abs("../examples/designs/l4proxy.yaml")
	require.NoError(t, err)
	sc, err := filepath.Abs("../examples/designs/socat.yaml")
	require.NoError(t, err)
	res, dir, err := Run(context.Background(), Options{
		Profile: "quick", Count: 2, Out: t.TempDir(), Designs: []string{l4, sc},
		Targets:   []string{"l4proxy-byo", "socat-byo"},
		Scenarios: []string{"tcp-stream-1", "tcp-crr", "udp-echo", "syscalls-up"},
	})
	require.NoError(t, err)
	assert.Empty(t, res.Failures)
	for _, tg := range []string{"l4proxy-byo", "socat-byo"} {
		for _, m := range []struct{ scenario, metric string }{{"tcp-stream-1", "throughput"}, {"tcp-stream-1", "cpu_per_gib"}, {"tcp-crr", "conn_rate"}} {
			rec := res.Find(m.scenario, tg, m.metric)
			if assert.NotNil(t, rec, "%s %s %s", m.scenario, tg, m.metric) {
				assert.Len(t, rec.Samples, 2)
			}
		}
	}
	assert.NotNil(t, res.Find("udp-echo", "l4proxy-byo", "udp_loss"), "the l4proxy example lists udp")
	assert.Contains(t, strings.Join(res.Notes, "\n"), "udp-echo: socat-byo skipped: design "+sc+" lists no udp protocol")
	verdicts := map[string]report.SyscallProfile{}
	for _, sp := range res.Syscalls {
		verdicts[sp.Target] = sp
	}
	assert.Equal(t, "splice", verdicts["l4proxy-byo"].Verdict, "data_path: splice, proved under strace")
	assert.Equal(t, "splice", verdicts["l4proxy-byo"].Expected)
	assert.Equal(t, "userspace", verdicts["socat-byo"].Verdict)
	assert.FileExists(t, filepath.Join(dir, "l4proxy-byo.conf"), "the design's config is saved with the results")
	for _, info := range res.Targets {
		if info.Name == "l4proxy-byo" {
			assert.Contains(t, info.Version, "github.com/l4bench/l4bench", "the version command's first line")
			assert.Contains(t, strings.Join(info.Command, " "), "--config")
		}
	}

	// A design file that is wrong is bad input before anything runs.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("name: x\nprotocols: [tcp]\nversion: [true]\ncommand: [\"{{.Nope}}\"]\n"), 0o644))
	_, _, err = Run(context.Background(), Options{Profile: "quick", Out: t.TempDir(), Designs: []string{bad}})
	var bi *badinput.Error
	require.ErrorAs(t, err, &bi)
	assert.Contains(t, err.Error(), "design "+bad+": command[0]")
}

// A profile's leave_out drops designs from the default selection only,
// and says so; --target still runs them.
func TestProfileLeavesOutOnlyByDefault(t *testing.T) {
	cat, err := Load()
	require.NoError(t, err)
	left := cat.Profiles["standard"].LeaveOut
	require.NotEmpty(t, left, "the standard profile leaves designs out to keep within its time")
	tests := []struct {
		name    string
		targets []string
		has     []string
		note    bool
	}{
		{"default selection", nil, nil, true},
		{"named with --target", left, left, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := prepare(Options{Profile: "standard", Targets: tt.targets, Out: t.TempDir()})
			require.NoError(t, err)
			var names []string
			for _, d := range p.targets {
				names = append(names, d.Name())
			}
			for _, n := range left {
				assert.Equal(t, slices.Contains(tt.has, n), slices.Contains(names, n), n)
			}
			if tt.note {
				assert.Contains(t, names, "l4proxy-loopsplice", "the rest of the default selection")
				assert.Contains(t, p.leftOut, "--target runs any of them")
			} else {
				assert.Empty(t, p.leftOut)
			}
		})
	}
}

// The scenarios whose figures are the state of the design's process (peak
// RSS and threads, memory and fds per idle connection) start it afresh
// for every round, so that no round inherits another's high-water marks;
// the others share one process. A design file that notes each start
// counts them.
func TestRoundsStartTheDesignAfresh(t *testing.T) {
	t.Setenv("PATH", filepath.Dir(target.L4ProxyPath)+":"+os.Getenv("PATH"))
	// One file, and one name, per subtest: a design's name is registered
	// for the life of the process.
	const file = `name: %s
protocols: [tcp]
version: [l4proxy, --version]
config: |
  entryPoints:
  {{- range .Routes}}
    {{.Name}}: {address: "{{.Listen}}", service: {{.Name}}}
  {{- end}}
  tcp:
    services:
  {{- range .Routes}}
      {{.Name}}: {loadBalancer: {servers: [{address: "{{.Backend}}"}]}}
  {{- end}}
command: [sh, -c, 'echo started >> "$0"/starts && exec l4proxy --config "$1"', "{{.Dir}}", "{{.ConfigPath}}"]
`
	const rounds = 2
	tests := []struct {
		scenario string
		starts   int
	}{
		{"tcp-stream-1", 1 + rounds},
		{"tcp-idle", 1 + rounds},
		{"tcp-crr", 1},
		{"tcp-rr", 1},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			name := "counted-" + tt.scenario
			design := filepath.Join(t.TempDir(), name+".yaml")
			require.NoError(t, os.WriteFile(design, fmt.Appendf(nil, file, name), 0o644))
			res, dir, err := Run(context.Background(), Options{
				Profile: "quick", Count: rounds, Out: t.TempDir(), Designs: []string{design},
				Targets: []string{name}, Scenarios: []string{tt.scenario},
			})
			require.NoError(t, err)
			assert.Empty(t, res.Failures)
			data, err := os.ReadFile(filepath.Join(dir, "starts"))
			require.NoError(t, err)
			assert.Equal(t, tt.starts, strings.Count(string(data), "started\n"), "the first start, then one per round where the process's state is the figure")
		})
	}
}
