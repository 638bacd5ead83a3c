// Command l4bench benchmarks L4 proxy designs side by side: our l4proxy
// per copy strategy and real peers (haproxy, nginx stream, socat), always
// against a no-proxy baseline measured in the same run.
//
//	l4bench run --profile quick            # results/<UTC time>/results.json and a summary
//	l4bench targets                        # what can run here, and why not
//	l4bench backend echo --listen 127.0.0.1:9000
//
// Exit codes: 0 success; 1 a gate or an l4proxy conformance case failed;
// 2 bad input (flag, file, schema), with a one-line reason.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/l4bench/l4bench/bench/backend"
	"github.com/l4bench/l4bench/bench/gate"
	"github.com/l4bench/l4bench/bench/report"
	"github.com/l4bench/l4bench/bench/target"
	"github.com/l4bench/l4bench/scenarios"
	"github.com/l4bench/l4bench/scenarios/conform"

	"github.com/l4bench/l4bench/internal/badinput"
	"github.com/l4bench/l4bench/internal/buildinfo"
)

// Exit codes of the contract.
const (
	exitOK       = 0
	exitFailed   = 1
	exitBadInput = 2
)

// exitError carries an exit code up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func badInput(err error) error { return &exitError{exitBadInput, err} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil { // nil: the reason was said already
			fmt.Fprintf(stderr, "l4bench: %v\n", ee.err)
		}
		return ee.code
	}
	// cobra's own errors: unknown command or flag, bad flag value.
	fmt.Fprintf(stderr, "l4bench: %v\n", oneLine(err))
	return exitBadInput
}

func oneLine(err error) string { return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ") }

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "l4bench",
		Short:         "Benchmark and conformance harness for L4 (TCP/UDP) proxy designs",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return badInput(fmt.Errorf("%s: %v (see l4bench %s --help)", c.Name(), err, c.Name()))
	})
	// --version and the version command print the same line.
	root.Version = buildinfo.Get().String()
	root.SetVersionTemplate("l4bench {{.Version}}\n")
	root.AddCommand(newRunCmd(stdout, stderr), newTargetsCmd(stdout), newBackendCmd(stderr), newPlotCmd(stdout), newGateCmd(stdout, stderr), newConformCmd(stdout, stderr), newCompareCmd(stdout),
		&cobra.Command{
			Use:   "version",
			Short: "Print l4bench's module version and VCS revision (+dirty for a modified tree)",
			Args:  cobra.NoArgs,
			Run:   func(*cobra.Command, []string) { fmt.Fprintln(stdout, "l4bench", buildinfo.Get()) },
		})
	return root
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// runFormats are what `run` can print on stdout: the summary tables, or
// the results themselves (the run's folder holds every form either way).
var runFormats = []string{"text", "csv", "json"}

func newRunCmd(stdout, stderr io.Writer) *cobra.Command {
	var opts scenarios.Options
	var format string
	var nf netFlags
	c := &cobra.Command{
		Use:   "run",
		Short: "Run scenarios against designs and write results/<UTC time>/results.json",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(runFormats, format) {
				return badInput(fmt.Errorf("--format: unknown format %q (choices: %s)", format, strings.Join(runFormats, ", ")))
			}
			if err := nf.check(); err != nil {
				return badInput(err)
			}
			if nf.net == "veth" {
				h, err := insideVeth()
				if err != nil {
					return badInput(err)
				}
				if h == nil {
					return runInVeth(cmd.Context(), nf, os.Args[1:])
				}
				h.use(&opts)
			}
			// On a terminal one updating line; in a log a line per round,
			// so a 15-minute make bench never looks stuck.
			opts.Progress, opts.PlainProgress = stderr, !isTerminal(stderr)
			opts.Command = append([]string{"l4bench"}, os.Args[1:]...)
			res, dir, err := scenarios.Run(cmd.Context(), opts)
			var bad *badinput.Error
			if errors.As(err, &bad) {
				return badInput(bad.Err)
			}
			if err != nil {
				return &exitError{exitFailed, err}
			}
			// With csv or json, stdout carries the results alone (for a
			// pipe); what a reader needs to know goes to stderr.
			human := stdout
			switch format {
			case "csv":
				if err := res.WriteCSV(stdout); err != nil {
					return &exitError{exitFailed, fmt.Errorf("--format csv: %w", err)}
				}
				human = stderr
			case "json":
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return &exitError{exitFailed, fmt.Errorf("--format json: %w", err)}
				}
				human = stderr
			default:
				res.Summary(stdout, target.Names(), isTerminal(stdout))
				fmt.Fprintln(stdout)
			}
			for _, n := range res.Notes {
				fmt.Fprintln(human, "note: "+n)
			}
			for _, t := range res.Targets {
				if t.Skipped != "" {
					fmt.Fprintf(human, "skipped: %s: %s\n", t.Name, t.Skipped)
				}
			}
			if res.Conformance != nil && format == "text" {
				m := &conform.Matrix{Conformance: *res.Conformance}
				fmt.Fprintln(stdout)
				m.Print(stdout)
			}
			for _, f := range res.Failures {
				fmt.Fprintf(human, "failed: %s\n", f)
			}
			fmt.Fprintf(human, "results: %s (%s)\n", filepath.Join(dir, "results.json"), res.Finished.Sub(res.Started).Round(1e9))
			fmt.Fprintf(human, "report:  %s\n", filepath.Join(dir, "report.md"))
			if n := len(res.Failures); n > 0 {
				return &exitError{exitFailed, fmt.Errorf("run: %d failure(s) of requested designs, first: %s", n, res.Failures[0])}
			}
			if res.Conformance != nil {
				m := &conform.Matrix{Conformance: *res.Conformance}
				if own := m.OwnFailures(); len(own) > 0 {
					return &exitError{exitFailed, fmt.Errorf("conform: %d case(s) failed on l4proxy, first: %s on %s: %s", len(own), own[0].Case, own[0].Target, own[0].Observed)}
				}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&opts.Profile, "profile", "quick", "scenario set: quick, standard or full")
	f.StringArrayVar(&opts.Scenarios, "scenario", nil, "run only this scenario (repeatable)")
	f.StringArrayVar(&opts.Targets, "target", nil, "run only this design (repeatable; direct is always measured)")
	f.BoolVar(&opts.Conform, "conform", false, "after the timed runs, run the conformance cases on the same designs (into results.json and report.md)")
	f.StringVar(&format, "format", "text", "what stdout gets at the end: text (summary tables), csv (one row per sample) or json (results.json); with csv or json the notes go to stderr")
	f.StringVar(&nf.net, "net", "loopback", "the path bytes cross: loopback, or veth (client, design and backends each in a network namespace of the run, joined by veth pairs; needs root)")
	f.IntVar(&nf.mtu, "mtu", 0, "with --net veth: the MTU of the veth links (default 1500; 9000 for jumbo frames)")
	f.StringVar(&nf.rate, "rate", "", "with --net veth: shape the design's links with tbf at this rate (tc syntax, e.g. 10gbit)")
	f.StringVar(&opts.Out, "out", "results", "folder under which the run's folder is made")
	f.IntVar(&opts.Count, "count", 0, "repetitions of each scenario (default: the profile's)")
	f.StringVar(&opts.ProxyCPUs, "proxy-cpus", "", "pin every design to these CPUs (taskset list, e.g. 1) and the load to the others")
	f.IntVar(&opts.Workers, "workers", 1, "worker processes/threads per design")
	f.BoolVar(&opts.AllowRemote, "allow-remote", false, "allow targets outside loopback (never needed for local designs)")
	f.StringArrayVar(&opts.Designs, "design", nil, "a design you bring, as a YAML file (repeatable; see examples/designs): measured like any built-in design")
	f.StringArrayVar(&opts.PeerBins, "peer-bin", nil, "another binary for a built-in peer, as NAME=PATH (haproxy, nginx, socat; repeatable), e.g. a haproxy 3.x you built")
	f.StringArrayVar(&opts.L4ProxyBins, "l4proxy-bin", nil, "another build of l4proxy as NAME=PATH (repeatable): each l4proxy-<strategy> target runs once per build, as l4proxy-<strategy>@NAME, in the same rounds (A/B; see gate --ab)")
	f.IntVar(&opts.L4ProxyBufferSize, "l4proxy-buffer-size", 0, "buffer of the l4proxy buffered, pooled and loop strategies in bytes (default 16384; e.g. 512 to check that the gate catches a slowdown)")
	return c
}

func newGateCmd(stdout, stderr io.Writer) *cobra.Command {
	var baseline, current, format, better, ab, allowances string
	var opts gate.Options
	c := &cobra.Command{
		Use:   "gate --baseline FILE --current FILE | gate --ab BASE,HEAD --current FILE",
		Short: "Fail (exit 1) when current regressed, significantly and beyond the allowance, or lost rows or samples",
		Long: `Compares a run with a stored baseline (--baseline), or two builds of l4proxy measured
in one run (--ab BASE,HEAD, after l4bench run --l4proxy-bin BASE=PATH --l4proxy-bin HEAD=PATH),
paired by round. Exit 1 when a gated row regressed, or is missing from the run, or has
fewer samples than the run asked for; exit 2 on bad input.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if current == "" {
				return badInput(errors.New("gate: --current is required (the results.json of the run to check)"))
			}
			if (baseline == "") == (ab == "") {
				return badInput(errors.New("gate: give either --baseline FILE or --ab BASE,HEAD (two builds of one run), not both or neither"))
			}
			formats := []string{"text", "markdown", "json", "benchstat", "github-action-benchmark"}
			if !slices.Contains(formats, format) {
				return badInput(fmt.Errorf("gate: --format: unknown format %q (choices: %s)", format, strings.Join(formats, ", ")))
			}
			if better != "higher" && better != "lower" {
				return badInput(fmt.Errorf("gate: --better: %q (choices: higher, lower)", better))
			}
			if opts.MaxRegression < 0 || opts.Alpha < 0 || opts.Alpha >= 1 {
				return badInput(fmt.Errorf("gate: --max-regression must be positive and --alpha between 0 and 1"))
			}
			cur, err := report.Load(current)
			if err != nil {
				return badInput(fmt.Errorf("gate: --current: %w", err))
			}
			var rows []gate.Row
			if ab != "" {
				base, head, ok := strings.Cut(ab, ",")
				if !ok || base == "" || head == "" || base == head {
					return badInput(fmt.Errorf("gate: --ab %q: want two different build names, BASE,HEAD (as given to l4bench run --l4proxy-bin)", ab))
				}
				cal, err := gate.LoadCalibration(allowances)
				if err != nil {
					return badInput(fmt.Errorf("gate: --allowances: %w", err))
				}
				opts.Allowances = cal.Allowances()
				if cal.Rounds > 0 && cur.Settings.Count > 0 && cur.Settings.Count < cal.Rounds {
					fmt.Fprintf(stderr, "l4bench gate: warning: the allowances were tuned on A/A runs of %d rounds and this run has %d: its changes are noisier than the allowances assume, so a pass or a failure means less (run %d rounds, or tune allowances for %d with go run ./scripts/gatenoise)\n",
						cal.Rounds, cur.Settings.Count, cal.Rounds, cur.Settings.Count)
				}
				if rows, err = gate.CompareAB(cur, base, head, opts); err != nil {
					return badInput(fmt.Errorf("gate: %s: %w", current, err))
				}
			} else {
				old, err := report.Load(baseline)
				if err != nil {
					return badInput(fmt.Errorf("gate: --baseline: %w", err))
				}
				for _, d := range gate.HostDifferences(old, cur) {
					fmt.Fprintf(stderr, "l4bench gate: warning: hosts differ: %s\n", d)
				}
				if rows, err = gate.Compare(old, cur, opts); err != nil {
					return badInput(fmt.Errorf("gate: %s vs %s: %w", baseline, current, err))
				}
			}
			switch format {
			case "benchstat":
				gate.WriteBenchstat(stdout, rows)
			case "markdown":
				gate.WriteMarkdown(stdout, rows, opts)
			case "json":
				if err := gate.WriteJSON(stdout, rows); err != nil {
					return err
				}
			case "github-action-benchmark":
				if err := gate.WriteGitHubActionBenchmark(stdout, cur, better); err != nil {
					return err
				}
			default:
				gate.WriteText(stdout, rows, opts)
			}
			if bad := gate.RegressedRows(rows); len(bad) > 0 {
				first := bad[0]
				what := fmt.Sprintf("%+.1f%% (p=%.3f)", first.Delta, first.P)
				if first.Verdict != gate.Regressed {
					what = first.Verdict + ": " + first.Note
				}
				return &exitError{exitFailed, fmt.Errorf("gate: %d failing row(s), first: %s / %s / %s %s", len(bad), first.Scenario, first.Target, first.Metric, what)}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&baseline, "baseline", "", "results.json of the baseline run")
	f.StringVar(&current, "current", "", "results.json of the run to check")
	f.StringVar(&ab, "ab", "", "BASE,HEAD: compare the builds l4proxy-*@HEAD with l4proxy-*@BASE of --current, paired by round (no baseline file)")
	f.StringVar(&allowances, "allowances", "", "with --ab: per-metric allowances from A/A runs (JSON, written by go run ./scripts/gatenoise; default: the calibration built in)")
	f.Float64Var(&opts.MaxRegression, "max-regression", gate.DefaultMaxRegression, "largest tolerated change in the worse direction, in percent, for metrics without a calibrated allowance (twice this for baseline rows without a direct figure)")
	f.BoolVar(&opts.GateTails, "gate-tails", false, "also gate p99 and higher latency percentiles (noisy in short runs)")
	f.Float64Var(&opts.Alpha, "alpha", 0.05, "significance level (Mann-Whitney U against a baseline; one-sided Wilcoxon signed-rank with --ab)")
	f.StringVar(&format, "format", "text", "output: text, markdown (a CI step summary), json, benchstat (the tested values as Go benchmark lines for benchstat -col run) or github-action-benchmark")
	f.StringVar(&better, "better", "higher", "with --format github-action-benchmark: the metrics to write, higher (customBiggerIsBetter) or lower (customSmallerIsBetter)")
	return c
}

func newCompareCmd(stdout io.Writer) *cobra.Command {
	var scenarios []string
	c := &cobra.Command{
		Use:   "compare A B",
		Short: "Two runs side by side (results.json or their folders): loopback against veth, one machine against another",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var runs [2]*report.Results
			for i, arg := range args {
				path := arg
				if st, err := os.Stat(arg); err == nil && st.IsDir() {
					path = filepath.Join(arg, "results.json")
				}
				r, err := report.Load(path)
				if err != nil {
					return badInput(fmt.Errorf("compare: %w", err))
				}
				runs[i] = r
			}
			rows := report.Compare(runs[0], runs[1], scenarios, target.Names())
			if len(rows) == 0 {
				return badInput(fmt.Errorf("compare: %s and %s share no scenario, design and metric (with --scenario: %v)", args[0], args[1], scenarios))
			}
			report.PrintComparison(stdout, runs[0], runs[1], rows)
			return nil
		},
	}
	c.Flags().StringArrayVar(&scenarios, "scenario", nil, "show only this scenario (repeatable)")
	return c
}

func newConformCmd(stdout, stderr io.Writer) *cobra.Command {
	var opts conform.Options
	c := &cobra.Command{
		Use:   "conform",
		Short: "Run the conformance cases against designs and print the case x design matrix",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Out == "" {
				opts.Out = filepath.Join("results", "conform", time.Now().UTC().Format("20060102T150405Z"))
			}
			// One plain line per case and design, on a terminal or in a
			// CI log alike: a matrix takes minutes.
			opts.Progress = stderr
			m, err := conform.Run(cmd.Context(), opts)
			var bad *badinput.Error
			if errors.As(err, &bad) {
				return badInput(bad.Err)
			}
			if err != nil {
				return &exitError{exitFailed, err}
			}
			m.Print(stdout)
			fmt.Fprintf(stdout, "conformance: %s\n", filepath.Join(opts.Out, "conformance.json"))
			if len(m.Missed) > 0 {
				return &exitError{exitFailed, fmt.Errorf("conform: %d design(s) that must run could not, first: %s", len(m.Missed), m.Missed[0])}
			}
			if own := m.OwnFailures(); len(own) > 0 {
				return &exitError{exitFailed, fmt.Errorf("conform: %d case(s) failed on l4proxy, first: %s on %s: %s", len(own), own[0].Case, own[0].Target, own[0].Observed)}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVar(&opts.Targets, "target", nil, "run on this design only (repeatable; default: every design that can run here)")
	f.StringArrayVar(&opts.Cases, "case", nil, "run this case only (repeatable)")
	f.StringArrayVar(&opts.Designs, "design", nil, "a design you bring, as a YAML file (repeatable; see examples/designs)")
	f.StringArrayVar(&opts.PeerBins, "peer-bin", nil, "another binary for a built-in peer, as NAME=PATH (haproxy, nginx, socat; repeatable)")
	f.StringVar(&opts.Out, "out", "", "folder for conformance.json and the designs' configs (default results/conform/<UTC time>)")
	return c
}

func newPlotCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "plot DIR",
		Short: "Render the plots and report.md of a run folder from its results.json",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return badInput(errors.New("plot: expected one run folder (e.g. results/20261126T095523Z)"))
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			res, err := report.Load(filepath.Join(args[0], "results.json"))
			if err != nil {
				return badInput(fmt.Errorf("plot: %w", err))
			}
			if err := res.WriteReport(args[0], target.Names()); err != nil {
				return &exitError{exitFailed, fmt.Errorf("plot: %w", err)}
			}
			fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(args[0], "report.md"))
			return nil
		},
	}
}

func newTargetsCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "targets",
		Short: "List each design, whether it can run here, its version, and why not",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			for _, n := range target.Names() {
				t, _ := target.Lookup(n)
				v, err := t.Check()
				if err != nil {
					fmt.Fprintf(stdout, "%-22s no   %s\n", n, err)
					continue
				}
				fmt.Fprintf(stdout, "%-22s yes  %s\n", n, v)
			}
			return nil
		},
	}
}

func newBackendCmd(stderr io.Writer) *cobra.Command {
	var listen string
	var udp bool
	var size int64
	c := &cobra.Command{
		Use:   "backend echo|sink|source",
		Short: "Run one backend server by hand until interrupted",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return badInput(fmt.Errorf("backend: expected one kind (choices: %s)", strings.Join(backend.Kinds, ", ")))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if listen == "" {
				return badInput(errors.New("backend: --listen is required (e.g. --listen 127.0.0.1:9000)"))
			}
			b, err := backend.Start(args[0], listen, udp, size)
			if err != nil {
				return badInput(fmt.Errorf("backend: %w", err))
			}
			defer b.Close()
			fmt.Fprintf(stderr, "l4bench backend %s listening on %s\n", args[0], b.Addr())
			<-cmd.Context().Done()
			return nil
		},
	}
	c.Flags().StringVar(&listen, "listen", "", "address to listen on")
	c.Flags().BoolVar(&udp, "udp", false, "serve UDP instead of TCP (echo, sink)")
	c.Flags().Int64Var(&size, "size", 0, "bytes a source sends per connection (0: until the client closes)")
	return c
}
