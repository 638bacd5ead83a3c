package scenarios

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/l4bench/l4bench/bench/load"
	"github.com/l4bench/l4bench/bench/measure"
	"github.com/l4bench/l4bench/bench/place"
	"github.com/l4bench/l4bench/bench/report"
	"github.com/l4bench/l4bench/bench/target"
	"github.com/l4bench/l4bench/scenarios/conform"

	"github.com/l4bench/l4bench/internal/badinput"
	"github.com/l4bench/l4bench/internal/buildinfo"

	"github.com/l4bench/l4bench/bench/backend"
)

// IperfTarget is the record name of iperf3's figure for direct.
const IperfTarget = "direct-iperf3"

// running is a started design.
type running struct {
	t      target.Target
	spec   target.Spec
	inst   *target.Instance
	failed string // set when the design broke during the run
}

// restart gives the design a fresh process, so that memory and fds kept
// from earlier samples (Go's pool of splice pipes, heaps that do not
// shrink at once) do not hide the cost of new connections.
func (d *running) restart() error {
	if d.t.Name() == report.Direct {
		return nil
	}
	_ = d.inst.Stop()
	inst, err := d.t.Start(d.spec)
	if err != nil {
		d.failed = "failed to restart: " + err.Error()
		return err
	}
	d.inst = inst
	return nil
}

// freshEachRound says whether a scenario's rounds each start the design
// afresh: those whose figures are the state of the design's process,
// which only grows over its life (peak RSS, threads, memory and fds per
// idle connection). Served by one process, every round after the first
// would inherit the first one's high-water marks, and the rounds would
// not be independent samples: one sixth thread spawned early showed in
// all five rounds of a build, and the gate's signed-rank test, paired by
// round, read that as a regression with p=0.031 between two identical
// builds.
func freshEachRound(kind string) bool { return kind == KindIdle || kind == KindStream }

// Run measures every selected design on every selected scenario and writes
// results.json and the designs' configs into a new folder under Out. It
// returns the results and that folder.
func Run(ctx context.Context, opts Options) (*report.Results, string, error) {
	p, err := prepare(opts)
	if err != nil {
		return nil, "", err
	}
	res := &report.Results{
		Schema: report.Schema, Started: time.Now().UTC(), Profile: p.opts.Profile, Command: opts.Command,
		Host: hostInfo(opts.Veth), Notes: append([]string(nil), opts.Notes...),
		Settings: report.Settings{Workers: max(opts.Workers, 1), ProxyCPUs: opts.ProxyCPUs, ClientCPUs: p.clientCPU, Count: p.profile.Count,
			StreamWarmup: StreamWarmup(time.Duration(p.profile.Duration)).String()},
	}
	if p.clientCPU != "" {
		if err := pinSelf(p.clientCPU); err != nil {
			return nil, p.dir, fmt.Errorf("pin the load client to CPUs %s: %w", p.clientCPU, err)
		}
	}
	needUDP := slices.ContainsFunc(p.scenarios, func(s Scenario) bool { return s.Kind == KindUDP || s.Kind == KindUDPCapacity })
	_, bePlace := opts.places()
	bes, err := startBackends(bePlace, needUDP)
	if err != nil {
		return nil, p.dir, err
	}
	defer bes.close()
	p.bes = bes

	designs, err := p.start(res)
	defer func() {
		for _, d := range designs {
			_ = d.inst.Stop()
		}
	}()
	if err != nil {
		return nil, p.dir, err
	}
	if err := p.measure(ctx, res, designs); err != nil {
		return nil, p.dir, err
	}
	return res, p.dir, p.finish(res)
}

// start checks and starts every design of the plan in front of the
// backends. A design that cannot run or start is recorded (a failure when
// it was asked for, or is ours); the error is for a run that cannot go on.
// The designs started so far are returned in every case, to be stopped.
func (p *plan) start(res *report.Results) ([]*running, error) {
	var designs []*running
	res.Host.Peers = map[string]string{}
	for _, t := range p.targets {
		info := report.Target{Name: t.Name()}
		version, err := t.Check()
		if err != nil {
			info.Skipped = err.Error()
			res.Targets = append(res.Targets, info)
			p.say("skipping %s: %v", t.Name(), err)
			// A peer missing from the default set is skipped with a
			// note; a design asked for by name, or our own, is missed.
			if slices.Contains(p.opts.Targets, t.Name()) || strings.HasPrefix(t.Name(), "l4proxy-") {
				res.Failures = append(res.Failures, report.Failure{Target: t.Name(), Why: "cannot run here: " + err.Error()})
			}
			continue
		}
		info.Version = version
		if t.Name() != report.Direct && !strings.HasPrefix(t.Name(), "l4proxy-") {
			res.Host.Peers[strings.SplitN(t.Name(), "-", 2)[0]] = version
		}
		if l, ok := t.(target.L4Proxy); ok && l.Build == "" {
			res.Host.L4Proxy = version
		}
		spec := p.specFor(t)
		inst, err := t.Start(spec)
		var designErr *target.DesignStartError
		if errors.As(err, &designErr) {
			// A design the user brought that does not start, or never
			// listens, is a mistake in its file: said before any sample.
			return designs, badinput.Wrap(err)
		}
		if err != nil {
			info.Skipped = "failed to start: " + err.Error()
			res.Targets = append(res.Targets, info)
			res.Failures = append(res.Failures, report.Failure{Target: t.Name(), Why: info.Skipped})
			p.say("skipping %s: %v", t.Name(), err)
			continue
		}
		for _, a := range inst.Addrs {
			if err := checkLoopback(a, p.opts.AllowRemote, p.opts.Veth != nil); err != nil {
				_ = inst.Stop()
				return designs, badinput.Wrap(err)
			}
		}
		info.Command = inst.Command
		if inst.Config != "" {
			info.Config, _ = filepath.Rel(p.dir, inst.Config) // beside results.json
		}
		res.Targets = append(res.Targets, info)
		designs = append(designs, &running{t: t, spec: spec, inst: inst})
	}
	if len(designs) == 0 {
		return nil, errors.New("no design could start")
	}
	return designs, nil
}

// specFor is what every design is asked for: the same backends, workers
// and CPUs. A design that declares it lacks UDP gets no UDP route (its UDP
// samples are skipped with its reason); --l4proxy-buffer-size goes to the
// designs that have a buffer size setting (l4proxy's).
func (p *plan) specFor(t target.Target) target.Spec {
	lacks := target.SupportOf(t).Lacks
	backends := map[string]string{}
	for k, a := range p.bes.addr {
		if _, no := lacks[target.FeatureUDP]; k == target.UDP && no {
			continue
		}
		backends[k] = a
	}
	designPlace, _ := p.opts.places()
	spec := target.Spec{Dir: p.dir, Backends: backends, Workers: p.opts.Workers, CPUs: p.opts.ProxyCPUs, Place: designPlace}
	if _, no := lacks[target.FeatureBufferSize]; !no {
		spec.BufferSize = p.opts.L4ProxyBufferSize
	}
	return spec
}

// measure runs the timed scenarios round by round, each round's designs
// in a shuffled order, then the traced ones, then the conformance matrix
// when asked for.
func (p *plan) measure(ctx context.Context, res *report.Results, designs []*running) error {
	if p.leftOut != "" {
		res.Notes = append(res.Notes, p.leftOut)
	}
	idleConns := p.profile.IdleConns
	// Six fds per connection is the most a design here needs (splice: two
	// sockets and two pipes); the hard limit cannot be raised by a process
	// without CAP_SYS_RESOURCE.
	if limit := int((measure.FDLimit() - 200) / 6); idleConns > limit {
		res.Notes = append(res.Notes, fmt.Sprintf("tcp-idle: %d idle connections instead of %d: the hard fd limit here is %d and a splicing design holds 6 fds per connection", limit, idleConns, measure.FDLimit()))
		idleConns = limit
	}
	p.idleConns = idleConns
	_, iperfErr := exec.LookPath("iperf3")

	var timed, traced []Scenario
	for _, s := range p.scenarios {
		if s.Kind == KindSyscalls {
			traced = append(traced, s)
		} else {
			timed = append(timed, s)
		}
	}
	seed := time.Now().UnixNano()
	res.Settings.Seed = seed
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	var firsts []*running
	total := p.profile.Count * len(designs) * len(timed)
	prog := newProgress(p.opts.Progress, p.opts.PlainProgress, total)
	for si, s := range timed {
		for round := 0; round < p.profile.Count; round++ {
			order := roundOrder(designs, rng, &firsts)
			for _, d := range order {
				if err := ctx.Err(); err != nil {
					return err
				}
				group := fmt.Sprintf("[%d/%d] %s, round %d/%d", si+1, len(timed), s.Name, round+1, p.profile.Count)
				prog.step(group, group+", "+d.t.Name())
				if d.failed != "" {
					continue
				}
				if freshEachRound(s.Kind) {
					if err := d.restart(); err != nil {
						res.Failures = append(res.Failures, report.Failure{Target: d.t.Name(), Scenario: s.Name, Round: round + 1, Why: d.failed})
						p.say("%s round %d: %s: %v", s.Name, round+1, d.t.Name(), err)
						continue
					}
				}
				addr, note := d.addressFor(s)
				if note != "" {
					if round == 0 {
						res.Notes = append(res.Notes, fmt.Sprintf("%s: %s skipped: %s", s.Name, d.t.Name(), note))
					}
					continue
				}
				err := p.sample(ctx, res, s, d, addr, idleConns, round+1)
				if err != nil {
					res.Failures = append(res.Failures, report.Failure{Target: d.t.Name(), Scenario: s.Name, Round: round + 1, Why: "sample lost: " + err.Error()})
					p.say("%s round %d: %s: sample lost: %v", s.Name, round+1, d.t.Name(), err)
				}
				// A design that died gives no more samples, and says so
				// once, whether or not this sample noticed.
				if exit := d.inst.Exited(); exit != nil && ctx.Err() == nil {
					d.failed = "died: " + exit.Error()
					res.Failures = append(res.Failures, report.Failure{Target: d.t.Name(), Scenario: s.Name, Round: round + 1, Why: d.failed + "; no samples after this one"})
					p.say("%s round %d: %s %s", s.Name, round+1, d.t.Name(), d.failed)
				}
				if s.Iperf3 && d.t.Name() == report.Direct {
					p.crossCheck(ctx, res, s, round+1, iperfErr)
				}
			}
		}
	}
	prog.done()
	// Traced runs come after every timed run and use their own processes:
	// strace slows a design and must never touch a timed figure.
	for _, s := range traced {
		if err := p.runSyscalls(ctx, res, s, designs, p.bes); err != nil {
			return err
		}
	}
	if p.opts.Conform {
		var names []string
		for _, t := range res.Targets {
			if t.Skipped == "" && t.Name != report.Direct && t.Name != IperfTarget {
				names = append(names, t.Name)
			}
		}
		if p.opts.Veth != nil {
			res.Notes = append(res.Notes, "conformance ran on loopback: its cases start their own designs there, not in the run's namespaces")
		}
		p.say("conformance: %d cases on %d designs", len(conform.Names()), len(names))
		m, err := conform.Run(ctx, conform.Options{Targets: names, Out: filepath.Join(p.dir, "conformance"), Progress: p.opts.Progress})
		if err != nil {
			return fmt.Errorf("conformance: %w", err)
		}
		res.Conformance = &m.Conformance
	}
	return nil
}

// crossCheck measures the direct path with iperf3 for the same time, in
// the same round, as the scenario's own client (catalogue: iperf3: true).
func (p *plan) crossCheck(ctx context.Context, res *report.Results, s Scenario, round int, iperfErr error) {
	dur := time.Duration(p.profile.Duration)
	switch {
	case iperfErr != nil:
		if round == 1 {
			res.Notes = append(res.Notes, "iperf3 not installed: no cross-check of the direct throughput (run scripts/install-peers.sh)")
		}
	default:
		addr, err := target.FreePort("tcp")
		if err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("iperf3 round %d: no free port: %v", round, err))
			return
		}
		_, port, _ := strings.Cut(addr, ":")
		_, bePlace := p.opts.places()
		bps, err := measure.Iperf3(ctx, bePlace, port, dur, directBytes(res, s.Name, round, dur))
		if err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("iperf3 round %d rejected: %v", round, err))
			return
		}
		res.AddRound(round, s.Name, IperfTarget, "throughput", bps)
	}
}

// params are a scenario's parameters as they ran: what the catalogue set
// for its kind, and what the profile and the run decided.
func (p *plan) params(s Scenario) map[string]any {
	data, err := yaml.Marshal(s)
	if err != nil {
		return nil
	}
	var all map[string]any
	if yaml.Unmarshal(data, &all) != nil {
		return nil
	}
	out := map[string]any{}
	for _, k := range kindFields[s.Kind] {
		if v, ok := all[k]; ok && v != nil && v != 0 && v != "" && v != false {
			out[k] = v
		}
	}
	dur := time.Duration(p.profile.Duration)
	switch s.Kind {
	case KindSyscalls:
	case KindIdle:
		out["conns"] = p.idleConns
	case KindUDPCapacity:
		out["step"] = max(dur/6, 100*time.Millisecond).String()
	default:
		out["duration"] = dur.String()
	}
	if s.Kind == KindStream {
		out["warmup"] = StreamWarmup(dur).String()
	}
	return out
}

// finish completes the results (scenario descriptions, the designs' own
// slab, merged histograms, the harness's own checks), saves results.json
// and writes the report beside it.
func (p *plan) finish(res *report.Results) error {
	res.Finished = time.Now().UTC()
	for _, s := range p.scenarios {
		res.Scenarios = append(res.Scenarios, report.ScenarioInfo{Name: s.Name, Kind: s.Kind, Answers: s.Answers, Caveat: s.Caveat,
			Plots: s.Plots, Headline: s.Headline, Sweep: s.Sweep, Findings: p.findings[s.Name], Params: p.params(s)})
	}
	ownSlab(res)
	for _, k := range p.histOrder {
		h, err := report.NewHistogram(k.scenario, k.target, k.what, p.hists[k])
		if err != nil {
			return err
		}
		res.Histograms = append(res.Histograms, h)
	}
	res.Notes = append(res.Notes, harnessCheck(res)...)
	res.Notes = append(res.Notes, latenessCheck(res)...)
	res.Notes = append(res.Notes, workersCheck(res)...)
	res.Notes = append(res.Notes, verdictChanges(filepath.Dir(p.dir), p.dir, res)...)
	if err := res.Save(filepath.Join(p.dir, "results.json")); err != nil {
		return err
	}
	if err := res.WriteReport(p.dir, target.Names()); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// histKey names a merged histogram.
type histKey struct{ scenario, target, what string }

// addLatency records this round's percentiles of h, each only when at
// least report.MinBeyond samples lie beyond it, as records named
// what_p50 and so on (connect_p999 is not a metric in use, and is not
// recorded), and merges h into the histogram of all rounds.
func (p *plan) addLatency(res *report.Results, round int, scenario, target, what string, h *hdrhistogram.Histogram) {
	if h == nil {
		return
	}
	for _, pc := range report.Percentiles {
		metric := what + "_" + pc.Name
		if _, known := report.Metrics[metric]; known && report.Reportable(h.TotalCount(), pc.Q) {
			res.AddRound(round, scenario, target, metric, float64(h.ValueAtQuantile(pc.Q*100)))
		}
	}
	k := histKey{scenario, target, what}
	if p.hists == nil {
		p.hists = map[histKey]*hdrhistogram.Histogram{}
	}
	if m, ok := p.hists[k]; ok {
		m.Merge(h)
	} else {
		p.hists[k] = hdrhistogram.Import(h.Export())
		p.histOrder = append(p.histOrder, k)
	}
}

// StreamWarmup is the start of each stream sample that is not counted in
// its throughput: a fifth of the duration, at most 250 ms.
func StreamWarmup(dur time.Duration) time.Duration { return min(dur/5, 250*time.Millisecond) }

// noteOnce adds a note to the results unless it is there already.
func (p *plan) noteOnce(res *report.Results, note string) {
	if !slices.Contains(res.Notes, note) {
		res.Notes = append(res.Notes, note)
	}
}

func (p *plan) say(format string, args ...any) {
	if p.opts.Progress != nil && p.opts.PlainProgress {
		fmt.Fprintf(p.opts.Progress, format+"\n", args...)
	} else if p.opts.Progress != nil {
		fmt.Fprintf(p.opts.Progress, "\r\033[K"+format+"\n", args...)
	}
}

// roundOrder is the order in which the designs run in a round: shuffled,
// so that no design keeps the same neighbours, with the first place dealt
// from a shuffled deck of all designs, so that over the rounds every
// design runs first as often as any other (to within one). firsts is the
// deck, refilled when empty.
func roundOrder[T comparable](designs []T, rng *rand.Rand, firsts *[]T) []T {
	if len(*firsts) == 0 {
		*firsts = slices.Clone(designs)
		rng.Shuffle(len(*firsts), func(i, j int) { (*firsts)[i], (*firsts)[j] = (*firsts)[j], (*firsts)[i] })
	}
	first := (*firsts)[0]
	*firsts = (*firsts)[1:]
	rest := make([]T, 0, len(designs))
	for _, d := range designs {
		if d != first {
			rest = append(rest, d)
		}
	}
	rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	return append([]T{first}, rest...)
}

// addressFor returns the address to load for a scenario, or why the design
// cannot serve it.
func (d *running) addressFor(s Scenario) (string, string) {
	kind := backend.Echo
	switch {
	case s.Kind == KindUDP, s.Kind == KindUDPCapacity:
		kind = target.UDP
	case s.Kind == KindStream && s.Direction == load.Up:
		kind = backend.Sink
	case s.Kind == KindStream && s.Direction == load.Down:
		kind = backend.Source
	}
	if a, ok := d.inst.Addrs[kind]; ok {
		return a, ""
	}
	if why, no := target.SupportOf(d.t).Lacks[target.FeatureUDP]; kind == target.UDP && no {
		return "", why
	}
	return "", "no " + kind + " entrypoint"
}

// cpu is the CPU time of a design's processes, including reaped children
// (socat's per-connection processes).
func (d *running) cpu() float64 {
	s, err := measure.ReadProcs(d.inst.PIDs())
	if err != nil {
		return 0
	}
	return s.CPUSeconds + s.ChildCPUSeconds
}

// sampleMemory reads the design's RSS and threads from /proc every 50 ms
// (reading /proc does not disturb the process) until the returned
// function is called, which returns the peaks.
func (d *running) sampleMemory() func() measure.ProcStats {
	var peak measure.ProcStats
	if len(d.inst.PIDs()) == 0 {
		return func() measure.ProcStats { return peak }
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if s, err := measure.ReadProcs(d.inst.PIDs()); err == nil {
				peak.RSSKiB = max(peak.RSSKiB, s.RSSKiB)
				peak.Threads = max(peak.Threads, s.Threads)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() measure.ProcStats {
		close(stop)
		<-done
		return peak
	}
}

// sample runs scenario s once against design d, in round (from 1).
// sample is one measurement of one design in one round.
type sample struct {
	res       *report.Results
	s         Scenario
	d         *running
	addr      string
	round     int
	dur       time.Duration
	idleConns int
}

// options are the load client's shared options for this sample.
func (x sample) options() load.Options { return load.Options{Addr: x.addr, Duration: x.dur} }

// add records one figure of the sample.
func (x sample) add(metric string, v float64) {
	x.res.AddRound(x.round, x.s.Name, x.d.t.Name(), metric, v)
}

// samplers map each scenario kind to what measures it: the load client
// (a load.Runner) and what is read around it.
var samplers = map[string]func(p *plan, ctx context.Context, x sample) error{
	KindStream:      (*plan).sampleStream,
	KindRR:          (*plan).sampleRR,
	KindCRR:         (*plan).sampleCRR,
	KindIdle:        (*plan).sampleIdle,
	KindUDPCapacity: (*plan).sampleCapacity,
	KindUDP:         (*plan).sampleUDP,
}

func (p *plan) sample(ctx context.Context, res *report.Results, s Scenario, d *running, addr string, idleConns, round int) error {
	f, ok := samplers[s.Kind]
	if !ok {
		return fmt.Errorf("scenario %s: no sampler for kind %q", s.Name, s.Kind)
	}
	return f(p, ctx, sample{res: res, s: s, d: d, addr: addr, round: round, dur: time.Duration(p.profile.Duration), idleConns: idleConns})
}

// sampleStream: throughput counted where the bytes arrive, and the
// design's CPU per GiB, CPUs used, memory and threads around the run.
func (p *plan) sampleStream(ctx context.Context, x sample) error {
	sink := p.bes.byKind[backend.Sink]
	sink0 := sink.Received()
	cpu0 := x.d.cpu()
	t0 := time.Now()
	stopSampling := x.d.sampleMemory()
	r, err := load.StreamOptions{Options: x.options(), Streams: x.s.Streams, Direction: x.s.Direction,
		Warmup: StreamWarmup(x.dur), Received: sink.Received}.Run(ctx)
	peak := stopSampling()
	if err != nil {
		return err
	}
	time.Sleep(100 * time.Millisecond) // let the design finish its last writes
	cpu := x.d.cpu() - cpu0
	busy := time.Since(t0)
	// CPU per GiB over the whole run, warm-up included, against every
	// byte that arrived, the last ones in flight included for Up.
	arrived := r.TotalBytes
	if x.s.Direction == load.Up {
		arrived = sink.Received() - sink0
	}
	x.add("throughput", r.Throughput())
	if pids := x.d.inst.PIDs(); len(pids) > 0 && arrived > 0 {
		x.add("cpu_per_gib", cpu/(float64(arrived)/(1<<30)))
		// CPUs the design kept busy: above its worker count for a
		// design that forks (socat) or runs helper threads.
		x.add("cpus_used", cpu/busy.Seconds())
		x.add("rss_peak", float64(peak.RSSKiB))
		x.add("threads", float64(peak.Threads))
		if steady, err := measure.ReadProcs(pids); err == nil {
			x.add("rss_steady", float64(steady.RSSKiB))
		}
	}
	return nil
}

// sampleRR: requests per second (closed loop) or the send lateness (open
// loop), and the latency histogram.
func (p *plan) sampleRR(ctx context.Context, x sample) error {
	r, err := load.RROptions{Options: x.options(), Conns: x.s.Conns, MessageSize: x.s.MessageSize, Rate: x.s.Rate}.Run(ctx)
	if err != nil {
		return err
	}
	if x.s.Rate == 0 {
		x.add("rps", r.RPS())
	}
	p.addLatency(x.res, x.round, x.s.Name, x.d.t.Name(), "latency", r.Hist)
	if x.s.Rate > 0 {
		x.add("send_lateness_p50", r.Lateness.P50)
		x.add("send_lateness_p99", r.Lateness.P99)
	}
	return nil
}

// sampleCRR: the connection rate, the whole exchange's latency and the
// connect's alone.
func (p *plan) sampleCRR(ctx context.Context, x sample) error {
	r, err := load.CRROptions{Options: x.options(), Workers: x.s.Workers, MessageSize: x.s.MessageSize}.Run(ctx)
	if err != nil {
		return err
	}
	x.add("conn_rate", r.Rate())
	// The whole exchange: connect, request, response, close. The
	// connect alone ends when the kernel completes the handshake,
	// before the design has accepted or dialled anything.
	p.addLatency(x.res, x.round, x.s.Name, x.d.t.Name(), "latency", r.CycleHist)
	p.addLatency(x.res, x.round, x.s.Name, x.d.t.Name(), "connect", r.ConnectHist)
	return nil
}

// sampleCapacity: the highest rate forwarded with loss at most 0.1%.
func (p *plan) sampleCapacity(ctx context.Context, x sample) error {
	// Six steps of a search fit in one profile duration; the search as a
	// whole is bounded by its steps, not by the duration.
	step := max(x.dur/6, 100*time.Millisecond)
	r, err := load.CapacityOptions{Options: load.Options{Addr: x.addr}, Clients: x.s.Clients, Size: x.s.Size, Step: step, Bisections: 2}.Run(ctx)
	if err != nil {
		return err
	}
	x.add("udp_capacity_pps", r.PPS)
	if r.ClientBound {
		p.noteOnce(x.res, fmt.Sprintf("%s: %s: the load client could not send faster than %.0f datagrams/s, so this figure is the harness's limit, not the design's", x.s.Name, x.d.t.Name(), r.PPS))
	}
	return nil
}

// sampleUDP: loss, latency and send lateness at a fixed rate.
func (p *plan) sampleUDP(ctx context.Context, x sample) error {
	r, err := load.UDPOptions{Options: x.options(), Clients: x.s.Clients, Rate: x.s.Rate, Size: x.s.Size}.Run(ctx)
	if err != nil {
		return err
	}
	x.add("udp_loss", r.Loss())
	if r.Received > 0 {
		p.addLatency(x.res, x.round, x.s.Name, x.d.t.Name(), "latency", r.Hist)
	}
	x.add("send_lateness_p50", r.Lateness.P50)
	x.add("send_lateness_p99", r.Lateness.P99)
	return nil
}

// sampleIdle: the design's memory, fds and slab per idle connection.
func (p *plan) sampleIdle(ctx context.Context, x sample) error {
	n := x.idleConns
	time.Sleep(200 * time.Millisecond)
	cost, err := measure.MeasureIdle(n, x.d.inst.PIDs, func() (func(), error) {
		conns, err := load.OpenIdle(ctx, x.addr, n, x.s.Warmup)
		if err != nil {
			return nil, err
		}
		return conns.Close, nil
	}, 300*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // let the design release them
	if err != nil {
		return err
	}
	// Kernel slab is system-wide: it holds the client's and the backend's
	// sockets too. direct measures exactly those, and ownSlab subtracts
	// them per round once the run is done.
	x.add("slab_per_conn", cost.SlabKiB)
	if cost.Processes == 0 {
		return nil // direct: no process of its own
	}
	x.add("rss_per_conn", cost.RSSKiB)
	x.add("fds_per_conn", cost.FDs)
	return nil
}

// directBytes is what l4bench's own client moved through direct in the
// given round of scenario, so that iperf3 can be asked to move as much
// and run about as long (its -t takes whole seconds only), or 0.
func directBytes(res *report.Results, scenario string, round int, dur time.Duration) int64 {
	rec := res.Find(scenario, report.Direct, "throughput")
	if rec == nil {
		return 0
	}
	if v, ok := rec.ByRound()[round]; ok && v > 0 {
		return int64(v * dur.Seconds())
	}
	return 0
}

// harnessCheck compares l4bench's direct throughput with iperf3's.
func harnessCheck(res *report.Results) []string {
	var own, ip *report.Record
	for i := range res.Records { // the scenario that was cross-checked
		if r := &res.Records[i]; r.Target == IperfTarget && r.Metric == "throughput" {
			ip, own = r, res.Find(r.Scenario, report.Direct, "throughput")
			break
		}
	}
	if own == nil || ip == nil || ip.Median == 0 {
		return nil
	}
	ratio := own.Median / ip.Median
	if ratio > 1 {
		return []string{fmt.Sprintf("l4bench's client was %.0f%% faster than iperf3 on direct (%s vs %s)", (ratio-1)*100,
			report.FormatValue(own.Median, own.Unit), report.FormatValue(ip.Median, ip.Unit))}
	}
	if ratio < 0.9 {
		return []string{fmt.Sprintf("**l4bench's own client reached only %.0f%% of iperf3 on direct (%s vs %s): the harness may be the bottleneck**",
			ratio*100, report.FormatValue(own.Median, own.Unit), report.FormatValue(ip.Median, ip.Unit))}
	}
	return []string{fmt.Sprintf("l4bench's client reached %.0f%% of iperf3 on direct (%s vs %s)", ratio*100,
		report.FormatValue(own.Median, own.Unit), report.FormatValue(ip.Median, ip.Unit))}
}

// latenessShare is the share of a latency median that a paced client's
// send lateness (p99) may reach before the figure is flagged.
const latenessShare = 0.10

// latenessCheck flags every paced sample set whose send lateness is a
// noticeable share of the latency it reports: that part of the figure is
// the client's timing, not the design.
func latenessCheck(res *report.Results) []string {
	var out []string
	for _, rec := range res.Records {
		if rec.Metric != "send_lateness_p99" {
			continue
		}
		lat := res.Find(rec.Scenario, rec.Target, "latency_p50")
		if lat == nil || lat.Median <= 0 {
			continue
		}
		if share := rec.Median / lat.Median; share > latenessShare {
			out = append(out, fmt.Sprintf("%s / %s: the client sent late by up to %.1f µs (p99 of the sends, median of the rounds), %.0f%% of the latency p50 of %.0f µs: that share of the figure is the harness's timing",
				rec.Scenario, rec.Target, rec.Median, share*100, lat.Median))
		}
	}
	return out
}

// ownSlab adds slab_own_per_conn: each design's system-wide slab per idle
// connection minus direct's in the same round, which is what the client's
// and the backend's sockets cost without a proxy: the design's own share.
func ownSlab(res *report.Results) {
	for _, rec := range slices.Clone(res.Records) {
		if rec.Metric != "slab_per_conn" || rec.Target == report.Direct {
			continue
		}
		direct := res.Find(rec.Scenario, report.Direct, "slab_per_conn")
		if direct == nil {
			continue
		}
		d, own := direct.ByRound(), rec.ByRound()
		for _, round := range slices.Sorted(maps.Keys(own)) {
			if dv, ok := d[round]; ok {
				res.AddRound(round, rec.Scenario, rec.Target, "slab_own_per_conn", own[round]-dv)
			}
		}
	}
}

// workersCheck names every design that kept more CPUs busy than the
// workers it was given, since the report says every design had the same.
func workersCheck(res *report.Results) []string {
	var out []string
	workers := float64(max(res.Settings.Workers, 1))
	for _, rec := range res.Records {
		if rec.Metric == "cpus_used" && rec.Median > workers*1.1 {
			out = append(out, fmt.Sprintf("%s / %s kept %.2f CPUs busy (median of the rounds) with %.0f worker configured: it forks or runs helpers, so it had more than one worker's CPU",
				rec.Scenario, rec.Target, rec.Median, workers))
		}
	}
	return out
}

// revision is the VCS revision of this build of l4bench ("" when unknown).
func revision() string { return buildinfo.Get().Revision }

func hostInfo(veth *place.Veth) report.Host {
	h := report.Host{CPUs: runtime.NumCPU(), Go: runtime.Version(), FDLimit: measure.FDLimit(), Revision: revision(),
		Kernel: measure.Kernel(), CPUModel: measure.CPUModel(), Sysctls: measure.Sysctls(), CPUGovernor: measure.CPUGovernor(),
		Net: "loopback", MTU: measure.MTU("lo")}
	if veth != nil {
		h.Net, h.MTU, h.Rate = "veth", veth.MTU, veth.Rate
	}
	return h
}

// pinSelf pins every thread of this process to the CPU list; threads
// created later inherit it.
func pinSelf(list string) error {
	cpus, err := parseCPUList(list)
	if err != nil {
		return err
	}
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, _ := strconv.Atoi(t.Name())
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return err
		}
	}
	return nil
}
