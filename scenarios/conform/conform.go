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
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/l4bench/l4bench/bench/measure"
	"github.com/l4bench/l4bench/bench/report"
	"github.com/l4bench/l4bench/bench/target"

	"github.com/l4bench/l4bench/internal/badinput"

	"github.com/l4bench/l4bench/bench/backend"
)

// Statuses of a result.
const (
	Pass    = "pass"
	Lenient = "lenient"
	Fail    = "fail"
	NA      = "n/a"
)

// HalfClose is the half-close timeout every design gets, above the
// longest wait after a FIN in any case (2 s).
const HalfClose = 5 * time.Second

// Result is one case on one design.
type Result = report.ConformResult

// Case is one catalogue row.
type Case struct {
	Name  string
	Group string
	// Run acts as client against addr, where the design forwards to the
	// backend handler that Backend returned. It returns the status and
	// what was seen.
	Run func(ctx context.Context, h *Harness) (string, string)
}

// Harness gives a case its design and backend.
type Harness struct {
	target target.Target
	dir    string
	inst   *target.Instance
	ln     net.Listener
	pc     net.PacketConn
	wg     sync.WaitGroup
	// AcceptDelay makes the backend wait before each accept().
	AcceptDelay time.Duration
	// ProxyProtocol asks the design to send PROXY headers of this version.
	ProxyProtocol int
	// ResendProxy asks the design to send PROXY headers, v2 where it
	// can, else v1 (the version used is in ResentVersion after Start).
	ResendProxy   bool
	ResentVersion int
	// AcceptProxy makes the design require PROXY headers from the client,
	// waiting at most HeaderTimeout for one.
	AcceptProxy   bool
	HeaderTimeout time.Duration
	// RequireProxy: the case needs the header to be mandatory, not just
	// accepted (n/a on designs where it is optional).
	RequireProxy bool
	// IdleTimeout and ConnectTimeout are set alike on every design.
	IdleTimeout    time.Duration
	ConnectTimeout time.Duration
	// HalfClose overrides the half-close timeout of every design (0:
	// the matrix's HalfClose).
	HalfClose time.Duration
	// Extra are arguments for l4proxy designs only (--shutdown-grace).
	Extra []string
	root  string // the case's folder, under which Restart makes its own
	// Wildcard makes the design listen on 0.0.0.0, IPv6 on ::1.
	Wildcard bool
	IPv6     bool
}

// spec is what every design is asked for, with the harness's settings.
func (h *Harness) spec(backends map[string]string) target.Spec {
	halfClose := HalfClose
	if h.HalfClose > 0 {
		halfClose = h.HalfClose
	}
	return target.Spec{Dir: h.dir, Backends: backends, HalfClose: halfClose, ProxyProtocol: h.ProxyProtocol, Extra: h.Extra,
		AcceptProxy: h.AcceptProxy, HeaderTimeout: h.HeaderTimeout, IdleTimeout: h.IdleTimeout, ConnectTimeout: h.ConnectTimeout,
		Wildcard: h.Wildcard, IPv6: h.IPv6}
}

// Start runs handle for every connection the backend accepts and starts
// the design in front of it; it returns the design's address.
func (h *Harness) Start(handle func(c *net.TCPConn)) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	h.ln = ln
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			time.Sleep(h.AcceptDelay)
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	return h.startDesign(ln.Addr().String())
}

// StartUDP runs handle for every datagram the UDP backend receives and
// starts the design in front of it; it returns the design's UDP address,
// or "" with the reason when the design does not forward UDP.
func (h *Harness) StartUDP(handle func(pc net.PacketConn, data []byte, from net.Addr)) (string, string, error) {
	backend := "127.0.0.1:0"
	if h.IPv6 {
		backend = "[::1]:0"
	}
	pc, err := net.ListenPacket("udp", backend)
	if err != nil {
		return "", "", err
	}
	h.pc = pc
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			handle(pc, append([]byte(nil), buf[:n]...), from)
		}
	}()
	return h.StartUDPTo(pc.LocalAddr().String())
}

// StartUDPTo starts the design in front of a given UDP backend address
// (for a backend that is not there yet).
func (h *Harness) StartUDPTo(backend string) (string, string, error) {
	inst, err := h.target.Start(h.spec(map[string]string{target.UDP: backend}))
	if err != nil {
		return "", "", err
	}
	h.inst = inst
	if a, ok := inst.Addrs[target.UDP]; ok {
		return a, "", nil
	}
	return "", inst.Skipped[target.UDP], nil
}

// FDs counts the open socket fds of the design's processes (-1 when
// unknown). Only sockets: Go's runtime and haproxy keep splice pipes in a
// pool sized by past concurrency and freed later (Go: at garbage
// collection), which is not a connection leak; the catalogue's teardown
// and leak rules are about sockets left open.
func (h *Harness) FDs() int {
	if h.inst == nil || len(h.inst.PIDs()) == 0 {
		return -1
	}
	return measure.SocketFDs(h.inst.PIDs())
}

// StartTo starts the design in front of a given backend address (for a
// backend that refuses).
func (h *Harness) StartTo(addr string) (string, error) { return h.startDesign(addr) }

// Restart stops the design and starts it again with the harness's
// current settings, in front of the same TCP backend; its config goes
// into the subfolder sub.
func (h *Harness) Restart(sub string) (string, error) {
	if h.inst != nil {
		_ = h.inst.Stop()
		h.inst = nil
	}
	if h.root == "" {
		h.root = h.dir
	}
	h.dir = filepath.Join(h.root, sub)
	if err := os.MkdirAll(h.dir, 0o755); err != nil {
		return "", err
	}
	return h.startDesign(h.ln.Addr().String())
}

// sub is a harness for the same design with its configs in a subfolder.
func (h *Harness) sub(name string) (*Harness, error) {
	dir := filepath.Join(h.dir, name)
	return &Harness{target: h.target, dir: dir}, os.MkdirAll(dir, 0o755)
}

func (h *Harness) startDesign(backendAddr string) (string, error) {
	versions := []int{h.ProxyProtocol}
	if h.ResendProxy {
		versions = []int{2, 1}
	}
	for i, v := range versions {
		h.ProxyProtocol = v
		inst, err := h.target.Start(h.spec(map[string]string{backend.Echo: backendAddr}))
		if err != nil {
			return "", err
		}
		h.inst = inst
		features := []string{target.AcceptProxyFeature, target.IdleTimeoutFeature}
		if h.RequireProxy {
			features = append(features, target.RequireProxyFeature)
		}
		for _, feature := range features {
			if why := inst.Skipped[feature]; why != "" {
				return "", &notApplicable{why}
			}
		}
		if why := inst.Skipped[target.ProxyProtocolFeature]; why != "" {
			if i+1 < len(versions) {
				_ = inst.Stop()
				h.inst = nil
				continue
			}
			return "", &notApplicable{why}
		}
		h.ResentVersion = v
		return inst.Addrs[backend.Echo], nil
	}
	return "", &notApplicable{"design cannot send PROXY headers"}
}

func (h *Harness) close() {
	if h.inst != nil {
		_ = h.inst.Stop()
	}
	if h.ln != nil {
		_ = h.ln.Close()
	}
	if h.pc != nil {
		_ = h.pc.Close()
	}
	h.wg.Wait()
}

// notApplicable is a design that lacks a feature a case needs.
type notApplicable struct{ why string }

func (n *notApplicable) Error() string { return n.why }

// startStatus turns a failed start into n/a with the reason.
func startStatus(err error) (string, string) {
	var na *notApplicable
	if errors.As(err, &na) {
		return NA, na.why
	}
	return NA, "design did not start: " + err.Error()
}

// caseLimit raises the 60 s cap of cases that restart the design many
// times.
var caseLimit = map[string]time.Duration{"tcp-large-echo-repeated": 4 * time.Minute}

// waitBound are the cases that spend their time waiting on timeouts and
// pauses with little traffic and coarse time limits (±1 s): they run on
// every design at once to keep the matrix short. Cases that move bulk
// data, count latency in milliseconds or race a reset run one design at
// a time.
var waitBound = map[string]bool{
	"tcp-client-halfclose": true, "tcp-backend-halfclose": true, "tcp-backend-refused": true,
	"tcp-backend-connect-timeout": true, "tcp-idle-timeout": true, "tcp-send-before-backend-accepts": true,
	"tcp-fin-then-rst-no-loss": true, "pp-send-v1": true, "pp-send-v2": true,
	"udp-session-idle-timeout": true, "udp-replies-routed": true, "udp-backend-unreachable": true,
	"udp-reply-source-address":     true,
	"tcp-stalled-reader-after-fin": true, "tcp-stalled-reader-no-fin": true, "tcp-shutdown-dial-in-flight": true,
}

func init() {
	for _, c := range Cases {
		if strings.HasPrefix(c.Name, "pp-recv-") {
			waitBound[c.Name] = true
		}
	}
}

// Options select cases and designs.
type Options struct {
	Targets []string // default: every design that can run here, but direct
	Cases   []string // default: all
	Out     string   // folder for conformance.json and configs (default: a temp folder)
	// Progress receives one line per case and design (nil: quiet).
	Progress io.Writer
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
	names := opts.Targets
	if len(names) == 0 {
		for _, n := range target.Names() {
			if n != report.Direct {
				names = append(names, n)
			}
		}
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
		if l, ok := caseLimit[c.Name]; ok {
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
		return Result{Case: c.Name, Target: t.Name(), Status: status, Observed: observed, Seconds: math.Round(took.Seconds()*100) / 100}, nil
	}
	for _, c := range cases {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m.Cases = append(m.Cases, c.Name)
		results := make([]Result, len(targets))
		errs := make([]error, len(targets))
		if waitBound[c.Name] {
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
		if r.Status == Fail && strings.HasPrefix(r.Target, "l4proxy-") {
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
		if r.Status != Pass {
			fmt.Fprintf(w, "%s on %s: %s: %s\n", r.Case, r.Target, r.Status, r.Observed)
		}
	}
	for _, s := range m.Skipped {
		fmt.Fprintf(w, "skipped: %s\n", s)
	}
}
