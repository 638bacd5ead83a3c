// Package conform runs black-box conformance cases from
// docs/conformance.md against any design and builds a
// pass/fail matrix:
//
//	m, err := conform.Run(ctx, conform.Options{Targets: []string{"l4proxy-splice", "nginx"}})
//	m.Print(os.Stdout)
//
// Each case starts its own loopback backend with the behaviour it needs and
// a fresh instance of the design, acts as the client, and returns pass,
// lenient (an allowed divergence, with what was seen), fail (with the
// observation) or n/a (the design lacks the feature). Every case is bounded
// in time.
package conform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/l4bench/l4bench/bench/report"
	"github.com/l4bench/l4bench/bench/target"
	"github.com/l4bench/l4bench/internal/badinput"
)

// Result is one case on one design.
type Result = report.ConformResult

// Options select cases and designs.
type Options struct {
	Targets []string // default: every design that can run here, but direct
	Cases   []string // default: all
	Out     string   // folder for conformance.json and configs (default: a temp folder)
	// Progress receives one line per case and design (nil: quiet).
	Progress io.Writer
	// Designs are design files the user brings (--design FILE).
	Designs []string
	// PeerBins point built-in peers at other binaries (NAME=PATH).
	PeerBins []string
}

// Matrix is the outcome of a run; conformance.json and the
// conformance section of results.json share its shape.
type Matrix struct {
	report.Conformance
	// Missed are the designs that had to run and could not: ours
	// (l4proxy-*) and any asked for by --target. A matrix without them
	// proves nothing of them, so the command exits 1.
	Missed []string
}

// Timeouts are the settings every design gets alike, for the report.
func Timeouts() map[string]string {
	return map[string]string{
		"half-close timeout (l4proxy and traefik terminationDelay, haproxy timeout client-fin/server-fin, socat -t; nginx proxy_half_close on)":                               HalfClose.String(),
		"connect timeout in tcp-backend-connect-timeout (l4proxy and traefik dialTimeout, haproxy timeout connect, nginx proxy_connect_timeout, socat connect-timeout)":       ConnectTimeout.String(),
		"connect retries: none anywhere (haproxy retries 0, its default being 3; l4proxy tryNextServer off; one server everywhere)":                                           "0",
		"idle timeout in tcp-idle-timeout (l4proxy idleTimeout, haproxy timeout client/server, nginx proxy_timeout, socat -T; traefik has none), connect timeout there 300ms": IdleTimeout.String(),
		"UDP session timeout in udp-session-idle-timeout and udp-many-clients (l4proxy udpTimeout, nginx proxy_timeout, traefik udp.timeout)":                                 UDPTimeout.String(),
		"PROXY header timeout in pp-recv-* (l4proxy headerTimeout, haproxy timeout client, nginx proxy_protocol_timeout, traefik readTimeout)":                                HeaderTimeout.String(),
		"backpressure stall (catalogue: 5 s)": bpStall.String(),
	}
}

// Names lists the implemented cases in catalogue order.
func Names() []string {
	var out []string
	for _, c := range Cases {
		out = append(out, c.Name)
	}
	return out
}

// Run executes the selected cases on the selected designs.
func Run(ctx context.Context, opts Options) (*Matrix, error) {
	var cases []Case
	for _, n := range opts.Cases {
		if !slices.Contains(Names(), n) {
			return nil, badinput.Errorf("--case: unknown case %q (implemented: %s)", n, strings.Join(Names(), ", "))
		}
	}
	for _, c := range Cases {
		if len(opts.Cases) == 0 || slices.Contains(opts.Cases, c.Name) {
			cases = append(cases, c)
		}
	}
	names, err := target.Select(opts.Targets, opts.Designs, opts.PeerBins)
	if err != nil {
		return nil, err
	}
	if len(opts.Targets) == 0 {
		names = slices.DeleteFunc(names, func(n string) bool { return n == report.Direct })
	}
	m := &Matrix{Conformance: report.Conformance{Timeouts: Timeouts()}}
	var targets []target.Target
	for _, n := range names {
		t, err := target.Lookup(n)
		if err != nil {
			return nil, badinput.Errorf("--target: %w", err)
		}
		if _, err := t.Check(); err != nil {
			m.Skipped = append(m.Skipped, fmt.Sprintf("%s: %v", n, err))
			if slices.Contains(opts.Targets, n) || strings.HasPrefix(n, "l4proxy-") {
				m.Missed = append(m.Missed, fmt.Sprintf("%s: %v", n, err))
			}
			continue
		}
		targets = append(targets, t)
		m.Targets = append(m.Targets, n)
		// Every case asks for the half-close timeout; the others only
		// some, and their approximations show in their observations.
		for _, a := range target.Approximations(t, target.Spec{HalfClose: HalfClose}) {
			m.Approximations = append(m.Approximations, n+": "+a)
		}
	}
	out := opts.Out
	if out == "" {
		d, err := os.MkdirTemp("", "l4bench-conform")
		if err != nil {
			return nil, err
		}
		out = d
	} else if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, badinput.Errorf("--out: %w", err)
	}
	// Designs stop in the background (traefik takes ~2 s to exit); all
	// are gone before Run returns.
	var stopping sync.WaitGroup
	defer stopping.Wait()
	runOne := func(c Case, t target.Target) (Result, error) {
		dir := filepath.Join(out, "configs", c.Name, t.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return Result{}, err
		}
		h := &Harness{target: t, dir: dir}
		limit := 60 * time.Second
		if l := c.Limit; l > 0 {
			limit = l
		}
		cctx, cancel := context.WithTimeout(ctx, limit)
		start := time.Now()
		status, observed := c.Run(cctx, h)
		switch {
		case ctx.Err() != nil: // the whole matrix was cancelled
			status, observed = Fail, "cancelled before the case finished ("+observed+")"
		case cctx.Err() != nil:
			status, observed = Fail, fmt.Sprintf("did not finish within the %s cap of the case (%s)", limit, observed)
		}
		cancel()
		took := time.Since(start)
		stopping.Add(1)
		go func() {
			defer stopping.Done()
			h.close()
		}()
		return Result{Case: c.Name, Target: t.Name(), Status: string(status), Observed: observed, Seconds: math.Round(took.Seconds()*100) / 100}, nil
	}
	for _, c := range cases {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m.Cases = append(m.Cases, c.Name)
		results := make([]Result, len(targets))
		errs := make([]error, len(targets))
		if c.WaitBound {
			var wg sync.WaitGroup
			for i, t := range targets {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i], errs[i] = runOne(c, t)
				}()
			}
			wg.Wait()
		} else {
			for i, t := range targets {
				results[i], errs[i] = runOne(c, t)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		for _, r := range results {
			m.Results = append(m.Results, r)
			if opts.Progress != nil {
				fmt.Fprintf(opts.Progress, "%-34s %-20s %-8s %5.1fs %s\n", r.Case, r.Target, r.Status, r.Seconds, r.Observed)
			}
		}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(out, "conformance.json"), append(data, '\n'), 0o644); err != nil {
		return nil, err
	}
	return m, nil
}

// Get returns the result of a case on a design.
func (m *Matrix) Get(c, t string) *Result {
	for i := range m.Results {
		if m.Results[i].Case == c && m.Results[i].Target == t {
			return &m.Results[i]
		}
	}
	return nil
}

// OwnFailures are the failed cases on l4proxy designs (they fail the run).
func (m *Matrix) OwnFailures() []Result {
	var out []Result
	for _, r := range m.Results {
		if Status(r.Status) == Fail && strings.HasPrefix(r.Target, "l4proxy-") {
			out = append(out, r)
		}
	}
	return out
}

// Print writes the matrix (case × design) and then every observation of
// a result other than pass.
func (m *Matrix) Print(w io.Writer) {
	short := func(t string) string {
		return strings.NewReplacer("l4proxy-", "l4p-", "haproxy-", "hap-", "splice-auto", "auto").Replace(t)
	}
	width := 4
	for _, c := range m.Cases {
		width = max(width, len(c))
	}
	fmt.Fprintf(w, "%-*s", width, "case")
	for _, t := range m.Targets {
		fmt.Fprintf(w, " %-10s", short(t))
	}
	fmt.Fprintln(w)
	for _, c := range m.Cases {
		fmt.Fprintf(w, "%-*s", width, c)
		for _, t := range m.Targets {
			s := "-"
			if r := m.Get(c, t); r != nil {
				s = r.Status
			}
			fmt.Fprintf(w, " %-10s", s)
		}
		fmt.Fprintln(w)
	}
	for _, r := range m.Results {
		if Status(r.Status) != Pass {
			fmt.Fprintf(w, "%s on %s: %s: %s\n", r.Case, r.Target, r.Status, r.Observed)
		}
	}
	for _, s := range m.Skipped {
		fmt.Fprintf(w, "skipped: %s\n", s)
	}
	for _, s := range m.Approximations {
		fmt.Fprintf(w, "approximated: %s\n", s)
	}
}

// Cases are the implemented catalogue rows, in catalogue order.
var Cases = []Case{
	{Name: "tcp-basic-bidir", Group: "A", Run: basicBidir},
	{Name: "tcp-backend-speaks-first", Group: "A", Run: backendSpeaksFirst},
	{Name: "tcp-tiny-transfers", Group: "A", Run: tinyTransfers},
	{Name: "tcp-large-checksum-bidir", Group: "A", Run: largeChecksum},
	{Name: "tcp-small-writes-order", Group: "A", Run: smallWritesOrder},
	{Name: "tcp-client-halfclose", Group: "B", WaitBound: true, Run: clientHalfClose},
	{Name: "tcp-backend-halfclose", Group: "B", WaitBound: true, Run: backendHalfClose},
	{Name: "tcp-full-close-teardown", Group: "B", Run: fullCloseTeardown},
	{Name: "tcp-backend-close-flushes", Group: "B", Run: backendCloseFlushes},
	{Name: "tcp-client-close-flushes", Group: "B", Run: clientCloseFlushes},
	{Name: "tcp-backend-rst", Group: "B", Run: backendRST},
	{Name: "tcp-client-rst", Group: "B", Run: clientRST},
	{Name: "tcp-fin-then-rst-no-loss", Group: "B", WaitBound: true, Run: finThenRSTNoLoss},
	{Name: "tcp-backend-refused", Group: "C", WaitBound: true, Run: backendRefused},
	{Name: "tcp-backend-connect-timeout", Group: "C", WaitBound: true, Run: connectTimeout},
	{Name: "tcp-send-before-backend-accepts", Group: "C", WaitBound: true, Run: sendBeforeAccept},
	{Name: "tcp-client-abort-before-connect", Group: "C", Run: abortBeforeConnect},
	{Name: "tcp-many-concurrent-isolation", Group: "C", Run: manyConcurrent},
	{Name: "tcp-churn-no-leak", Group: "C", Run: churnNoLeak},
	{Name: "tcp-idle-timeout", Group: "C", WaitBound: true, Run: idleTimeout},
	{Name: "tcp-stalled-reader-after-fin", Group: "C", WaitBound: true, Run: stalledReader(true)},
	{Name: "tcp-stalled-reader-no-fin", Group: "C", WaitBound: true, Run: stalledReader(false)},
	{Name: "tcp-large-echo-repeated", Group: "C", Limit: 4 * time.Minute, Run: largeEchoRepeated},
	{Name: "tcp-shutdown-dial-in-flight", Group: "C", WaitBound: true, Run: shutdownDialInFlight},
	{Name: "tcp-backpressure-slow-backend", Group: "D", Run: backpressureSlowBackend},
	{Name: "tcp-backpressure-slow-client", Group: "D", Run: backpressureSlowClient},
	{Name: "pp-send-v1", Group: "E", WaitBound: true, Run: ppSendV1},
	{Name: "pp-send-v2", Group: "E", WaitBound: true, Run: ppSendV2},
	{Name: "pp-recv-v1-valid", Group: "F", WaitBound: true, Run: ppRecvV1Valid},
	{Name: "pp-recv-v1-unknown", Group: "F", WaitBound: true, Run: ppRecvV1Unknown},
	{Name: "pp-recv-v1-length-limit", Group: "F", WaitBound: true, Run: ppRecvV1LengthLimit},
	{Name: "pp-recv-v1-malformed", Group: "F", WaitBound: true, Run: ppRecvV1Malformed},
	{Name: "pp-recv-v2-valid", Group: "F", WaitBound: true, Run: ppRecvV2Valid},
	{Name: "pp-recv-v2-local", Group: "F", WaitBound: true, Run: ppRecvV2Local},
	{Name: "pp-recv-v2-family-edge", Group: "F", WaitBound: true, Run: ppRecvV2FamilyEdge},
	{Name: "pp-recv-v2-tlvs", Group: "F", WaitBound: true, Run: ppRecvV2TLVs},
	{Name: "pp-recv-v2-length-mismatch", Group: "F", WaitBound: true, Run: ppRecvV2LengthMismatch},
	{Name: "pp-recv-v2-bad-version-command", Group: "F", WaitBound: true, Run: ppRecvV2BadVersionCommand},
	{Name: "pp-recv-bad-signature", Group: "F", WaitBound: true, Run: ppRecvBadSignature},
	{Name: "pp-recv-split-header", Group: "F", WaitBound: true, Run: ppRecvSplitHeader},
	{Name: "pp-recv-header-timeout", Group: "F", WaitBound: true, Run: ppRecvHeaderTimeout},
	{Name: "pp-recv-header-only-backend-first", Group: "F", WaitBound: true, Run: ppRecvHeaderOnly},
	{Name: "udp-basic-roundtrip", Group: "G", Run: udpBasic},
	{Name: "udp-datagram-boundaries", Group: "G", Run: udpBoundaries},
	{Name: "udp-zero-length", Group: "G", Run: udpZeroLength},
	{Name: "udp-max-datagram", Group: "G", Run: udpMaxDatagram},
	{Name: "udp-session-per-client", Group: "G", Run: udpSessionPerClient},
	{Name: "udp-replies-routed", Group: "G", WaitBound: true, Run: udpRepliesRouted},
	{Name: "udp-session-idle-timeout", Group: "G", WaitBound: true, Run: udpSessionIdleTimeout},
	{Name: "udp-many-clients", Group: "G", Run: udpManyClients},
	{Name: "udp-slow-session-isolation", Group: "G", Run: udpSlowSessionIsolation},
	{Name: "udp-backend-unreachable", Group: "G", WaitBound: true, Run: udpBackendUnreachable},
	{Name: "udp-reply-source-address", Group: "G", WaitBound: true, Run: udpReplySource},
}
