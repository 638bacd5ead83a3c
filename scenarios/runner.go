package scenarios

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/l4bench/l4bench/bench/backend"
	"github.com/l4bench/l4bench/bench/place"
	"github.com/l4bench/l4bench/bench/target"

	"github.com/l4bench/l4bench/internal/badinput"

	"github.com/l4bench/l4bench/bench/report"
)

// Options configure a run. The zero value runs the quick profile against
// every target that can run here.
type Options struct {
	Profile   string   // default quick
	Scenarios []string // default: the profile's
	Targets   []string // default: all
	// Out is the folder under which results/<UTC timestamp>/ is made
	// (default "results").
	Out string
	// Count overrides the profile's repetitions.
	Count int
	// ProxyCPUs pins every design to these CPUs (taskset list) and the
	// load clients and backends to the others.
	ProxyCPUs string
	// Workers per design (default 1).
	Workers int
	// AllowRemote permits non-loopback target addresses.
	AllowRemote bool
	// Progress receives progress lines (nil: quiet).
	Progress io.Writer
	// PlainProgress writes whole lines, one per scenario round, without
	// terminal escapes (for logs).
	PlainProgress bool
	// Command is recorded in the results.
	Command []string
	// L4ProxyBufferSize sets the buffer of l4proxy's buffered, pooled and loop
	// strategies (0: their default).
	L4ProxyBufferSize int
	// Conform runs the conformance matrix on the same designs after the
	// timed runs; it goes into results.json and report.md.
	Conform bool
	// L4ProxyBins are other builds of l4proxy, as NAME=PATH: each
	// l4proxy-<strategy> target runs once per build, as
	// l4proxy-<strategy>@NAME, interleaved in the same rounds (A/B runs).
	L4ProxyBins []string
	// Designs are design files the user brings (--design FILE): each is a
	// target like the built-in ones, and runs by default.
	Designs []string
	// PeerBins point built-in peers at other binaries, as NAME=PATH
	// (--peer-bin haproxy=/usr/local/sbin/haproxy).
	PeerBins []string
	// Veth, when set, places the roles in a run's network namespaces
	// (--net veth): the designs in Veth.Design, the backends in
	// Veth.Backends, and the load client where this process runs, which
	// must be Veth.Client (cmd/l4bench starts the run there). Nil: every
	// role on this host's loopback.
	Veth *place.Veth
	// Notes are said by whoever set the run up (leftovers it removed),
	// for the results.
	Notes []string
}

// places are where the backends and the designs run.
func (o Options) places() (designs, backends place.Place) {
	if o.Veth == nil {
		return place.Host(), place.Host()
	}
	return o.Veth.Design, o.Veth.Backends
}

func badInput(format string, args ...any) error { return badinput.Errorf(format, args...) }

// plan is a validated run.
type plan struct {
	opts      Options
	profile   Profile
	scenarios []Scenario
	targets   []target.Target
	dir       string
	clientCPU string
	bes       *backends // set once started
	// hists merges each design's latency histograms over the rounds.
	hists map[histKey]*hdrhistogram.Histogram
	// leftOut is the note saying which designs the profile left out.
	leftOut string
	// idleConns is how many idle connections tcp-idle opens (the
	// profile's, or fewer when the fd limit says so).
	idleConns int
	// findings are what each scenario derived from its data, by name.
	findings  map[string][]string
	histOrder []histKey
}

// Prepare validates options and creates the output folder, before
// anything is started.
func prepare(opts Options) (*plan, error) {
	if opts.Profile == "" {
		opts.Profile = "quick"
	}
	if opts.Out == "" {
		opts.Out = "results"
	}
	cat, err := Load()
	if err != nil {
		return nil, err
	}
	scs, err := cat.Select(opts.Profile, opts.Scenarios)
	if err != nil {
		return nil, badinput.Wrap(err)
	}
	p := &plan{opts: opts, profile: cat.Profiles[opts.Profile], scenarios: scs}
	if opts.L4ProxyBufferSize < 0 {
		return nil, badInput("--l4proxy-buffer-size: must be positive, got %d", opts.L4ProxyBufferSize)
	}
	if opts.Count < 0 {
		return nil, badInput("--count: must be 1 or more, got %d", opts.Count)
	}
	if opts.Count > 0 {
		p.profile.Count = opts.Count
	}
	names, err := target.Select(opts.Targets, opts.Designs, opts.PeerBins)
	if err != nil {
		return nil, err
	}
	for _, n := range p.profile.LeaveOut {
		if _, err := target.Lookup(n); err != nil {
			return nil, fmt.Errorf("scenario catalogue: profile %s: leave_out: %w", opts.Profile, err)
		}
	}
	if len(opts.Targets) == 0 && len(p.profile.LeaveOut) > 0 {
		names = slices.DeleteFunc(names, func(n string) bool { return slices.Contains(p.profile.LeaveOut, n) })
		p.leftOut = fmt.Sprintf("profile %s leaves out %s (%s): --target runs any of them", opts.Profile, strings.Join(p.profile.LeaveOut, ", "), p.profile.LeaveOutWhy)
	}
	if !slices.Contains(names, report.Direct) {
		names = append([]string{report.Direct}, names...) // every run measures the baseline
	}
	for _, n := range names {
		t, err := target.Lookup(n)
		if err != nil {
			return nil, badInput("--target: %v", err)
		}
		if !slices.ContainsFunc(p.targets, func(x target.Target) bool { return x.Name() == n }) {
			p.targets = append(p.targets, t)
		}
	}
	if len(opts.L4ProxyBins) > 0 {
		if p.targets, err = perBuild(p.targets, opts.L4ProxyBins); err != nil {
			return nil, err
		}
	}
	if opts.ProxyCPUs != "" {
		proxy, err := parseCPUList(opts.ProxyCPUs)
		if err != nil {
			return nil, badInput("--proxy-cpus: %v", err)
		}
		var rest []string
		for c := 0; c < runtime.NumCPU(); c++ {
			if !slices.Contains(proxy, c) {
				rest = append(rest, fmt.Sprint(c))
			}
		}
		if len(rest) == 0 {
			return nil, badInput("--proxy-cpus %q leaves no CPU for the load client and backends (this machine has %d)", opts.ProxyCPUs, runtime.NumCPU())
		}
		p.clientCPU = strings.Join(rest, ",")
	}
	out, err := filepath.Abs(opts.Out)
	if err != nil {
		return nil, badInput("--out: %v", err)
	}
	// Absolute, because peers resolve relative paths against their own
	// prefix (nginx -p).
	p.dir = filepath.Join(out, time.Now().UTC().Format("20060102T150405Z"))
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, badInput("--out: cannot create %s: %v", p.dir, unwrapPath(err))
	}
	probe := filepath.Join(p.dir, ".write-test")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		return nil, badInput("--out: %s is not writable: %v", p.dir, unwrapPath(err))
	}
	_ = os.Remove(probe)
	return p, nil
}

var buildName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// perBuild replaces each l4proxy target with one per build given as
// NAME=PATH, in the order given; other targets stay as they are.
func perBuild(targets []target.Target, bins []string) ([]target.Target, error) {
	type build struct{ name, path string }
	var builds []build
	for _, b := range bins {
		name, path, ok := strings.Cut(b, "=")
		switch {
		case !ok || path == "":
			return nil, badInput("--l4proxy-bin %q: want NAME=PATH, e.g. base=/tmp/base/l4proxy", b)
		case !buildName.MatchString(name):
			return nil, badInput("--l4proxy-bin %q: the name %q may hold only letters, digits, '.', '_' and '-'", b, name)
		case slices.ContainsFunc(builds, func(x build) bool { return x.name == name }):
			return nil, badInput("--l4proxy-bin %q: the name %q is given twice", b, name)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, badInput("--l4proxy-bin %q: %v", b, err)
		}
		if !target.IsExecutable(abs) {
			return nil, badInput("--l4proxy-bin %q: %s is not an executable file (build it with: go build -o %s ./cmd/l4proxy)", b, abs, path)
		}
		builds = append(builds, build{name, abs})
	}
	var out []target.Target
	found := false
	for _, t := range targets {
		l, ok := t.(target.L4Proxy)
		if !ok {
			out = append(out, t)
			continue
		}
		found = true
		for _, b := range builds {
			out = append(out, l.Of(b.name, b.path))
		}
	}
	if !found {
		return nil, badInput("--l4proxy-bin: no l4proxy-<strategy> target in this run to run the builds of (add --target l4proxy-splice, for example)")
	}
	return out, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// parseCPUList parses taskset's list syntax: "1", "0,2", "0-3".
func parseCPUList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		var a, b int
		if _, err := fmt.Sscanf(lo, "%d", &a); err != nil {
			return nil, fmt.Errorf("%q is not a CPU list (e.g. 1 or 0-1)", s)
		}
		b = a
		if isRange {
			if _, err := fmt.Sscanf(hi, "%d", &b); err != nil || b < a {
				return nil, fmt.Errorf("%q is not a CPU list (e.g. 1 or 0-1)", s)
			}
		}
		for c := a; c <= b; c++ {
			if c >= runtime.NumCPU() {
				return nil, fmt.Errorf("CPU %d does not exist (this machine has CPUs 0-%d)", c, runtime.NumCPU()-1)
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// checkLoopback refuses addresses outside 127.0.0.0/8 and ::1.
func checkLoopback(addr string, allow, veth bool) error {
	if allow {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip != nil && (ip.IsLoopback() || veth && place.InTestNet(ip)) {
		return nil
	}
	if veth {
		return fmt.Errorf("refusing to send load to %s: neither loopback nor in the run's own namespaces (%s) (pass --allow-remote to permit it)", addr, place.TestNet)
	}
	return fmt.Errorf("refusing to send load to %s: not a loopback address (pass --allow-remote to permit it)", addr)
}

// backends are the servers behind every design, in this process.
type backends struct {
	list   []*backend.Backend
	addr   map[string]string
	byKind map[string]*backend.Backend
}

func startBackends(pl place.Place, udp bool) (*backends, error) {
	b := &backends{addr: map[string]string{}, byKind: map[string]*backend.Backend{}}
	kinds := []struct {
		kind, name string
		udp        bool
	}{{backend.Echo, backend.Echo, false}, {backend.Sink, backend.Sink, false}, {backend.Source, backend.Source, false}}
	if udp {
		kinds = append(kinds, struct {
			kind, name string
			udp        bool
		}{target.UDP, backend.Echo, true})
	}
	for _, k := range kinds {
		be, err := backend.StartIn(pl, k.name, net.JoinHostPort(pl.Addr, "0"), k.udp, 0)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("start %s backend: %w", k.kind, err)
		}
		b.list = append(b.list, be)
		b.addr[k.kind] = be.Addr()
		b.byKind[k.kind] = be
	}
	return b, nil
}

func (b *backends) close() {
	for _, be := range b.list {
		_ = be.Close()
	}
}
