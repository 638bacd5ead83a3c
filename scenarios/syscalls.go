package scenarios

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/l4bench/l4bench/bench/load"
	"github.com/l4bench/l4bench/bench/measure"
	"github.com/l4bench/l4bench/bench/report"
	"github.com/l4bench/l4bench/bench/target"
	"github.com/l4bench/l4bench/internal/payload"

	"github.com/l4bench/l4bench/bench/backend"
)

// expected is the verdict a traced design or variant must have: the data
// path its target declares (every l4proxy-splice feature variant must
// still splice). Designs that declare none (haproxy-splice-auto) are
// reported as they are.
func expected(name string) string { return target.ExpectedDataPath(name) }

// spliceVariant is a feature that could wrap a conn on l4proxy-splice's
// data path; each is traced on its own and all together.
type spliceVariant struct {
	name   string
	mod    func(*target.Spec)
	accept bool // the client sends a PROXY v2 header first
}

var spliceVariants = []spliceVariant{
	{"proxy-v2", func(s *target.Spec) { s.ProxyProtocol = 2 }, false},
	{"accept-proxy", func(s *target.Spec) { s.AcceptProxy, s.HeaderTimeout = true, 3*time.Second }, true},
	{"idle-timeout", func(s *target.Spec) { s.IdleTimeout = 30 * time.Second }, false},
	{"termination-delay", func(s *target.Spec) { s.HalfClose = 5 * time.Second }, false},
	{"all", func(s *target.Spec) {
		s.ProxyProtocol, s.AcceptProxy, s.HeaderTimeout = 2, true, 3*time.Second
		s.IdleTimeout, s.HalfClose = 30*time.Second, 5*time.Second
	}, true},
}

// clientProxyHeader is the PROXY v2 header a traced client sends to a
// design that requires one.
func clientProxyHeader() []byte {
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 123}, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 5678})
	b, _ := h.Format()
	return b
}

// waitSyscalls are traced beside the data syscalls: the cost of waiting.
var waitSyscalls = []string{"epoll_wait", "epoll_pwait", "futex", "poll", "ppoll"}

// runSyscalls traces every design (and variants of l4proxy-splice) once
// while the scenario's payload crosses it.
func (p *plan) runSyscalls(ctx context.Context, res *report.Results, s Scenario, designs []*running, bes *backends) error {
	if _, err := measure.StracePath(); err != nil {
		res.Notes = append(res.Notes, s.Name+": skipped: "+err.Error())
		return nil
	}
	type variant struct {
		name string
		d    *running
		sv   spliceVariant
	}
	var vs []variant
	for _, d := range designs {
		if d.t.Name() == report.Direct {
			continue
		}
		vs = append(vs, variant{d.t.Name(), d, spliceVariant{mod: func(*target.Spec) {}}})
		if d.t.Name() == "l4proxy-splice" && s.Direction == load.Up {
			for _, sv := range spliceVariants {
				vs = append(vs, variant{"l4proxy-splice+" + sv.name, d, sv})
			}
		}
	}
	var traced []report.SyscallProfile
	defer func() { p.syscallFindings(s.Name, traced) }()
	for _, v := range vs {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.say("%s: tracing %s", s.Name, v.name)
		prof, mib, err := p.traceOne(ctx, s, v.d, v.name, v.sv)
		if err != nil {
			res.Failures = append(res.Failures, report.Failure{Target: v.name, Scenario: s.Name, Why: "traced run failed: " + err.Error()})
			continue
		}
		sp := report.SyscallProfile{Scenario: s.Name, Target: v.name, MiB: mib, Calls: prof.Calls, PerMiB: map[string]float64{},
			Spliced: prof.SpliceBytes(), User: prof.UserspaceBytes(), Verdict: prof.Verdict(), Expected: expected(v.name)}
		for c, n := range prof.Calls {
			sp.PerMiB[c] = float64(n) / mib
			sp.Total += float64(n) / mib
		}
		res.Syscalls = append(res.Syscalls, sp)
		traced = append(traced, sp)
		if sp.Expected != "" && sp.Expected != sp.Verdict && strings.HasPrefix(v.name, "l4proxy-") {
			res.Failures = append(res.Failures, report.Failure{Target: v.name, Scenario: s.Name,
				Why: fmt.Sprintf("its data path was %s under strace, not the expected %s (%d bytes spliced, %d through user space)", sp.Verdict, sp.Expected, sp.Spliced, sp.User)})
		}
	}
	return nil
}

// syscallFindings says what strace saw where a reader could not guess it:
// the path of each design that declares none (haproxy's splice-auto
// decides at run time), and whether l4proxy-splice still spliced with
// every feature that could wrap its conns. A design whose path is not
// the declared one is a finding of the report's own (and a failure).
func (p *plan) syscallFindings(scenario string, traced []report.SyscallProfile) {
	var out, variants, spliced []string
	for _, sp := range traced {
		if sp.Expected == "" {
			out = append(out, fmt.Sprintf("%s, which declares no data path, was `%s` in %s (%d bytes spliced, %d through user space).",
				sp.Target, sp.Verdict, scenario, sp.Spliced, sp.User))
		}
		if name, ok := strings.CutPrefix(sp.Target, "l4proxy-splice+"); ok {
			variants = append(variants, name)
			if sp.Verdict == measure.VerdictSplice {
				spliced = append(spliced, name)
			}
		}
	}
	if len(variants) > 0 && len(spliced) == len(variants) {
		out = append(out, fmt.Sprintf("l4proxy-splice still spliced in %s with every feature that could wrap its conns turned on (%s).",
			scenario, strings.Join(variants, ", ")))
	}
	if len(out) == 0 {
		return
	}
	if p.findings == nil {
		p.findings = map[string][]string{}
	}
	p.findings[scenario] = append(p.findings[scenario], out...)
}

func (p *plan) traceOne(ctx context.Context, s Scenario, d *running, name string, sv spliceVariant) (*measure.Profile, float64, error) {
	dir := filepath.Join(p.dir, "syscalls", s.Name, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, err
	}
	out := filepath.Join(dir, "strace.out")
	strace, _ := measure.StracePath()
	spec := d.spec
	spec.Dir = dir
	sv.mod(&spec)
	spec.Wrap = append([]string{strace}, measure.StraceArgs(out, waitSyscalls...)...)
	inst, err := d.t.Start(spec)
	if err != nil {
		return nil, 0, err
	}
	kind := backend.Sink
	if s.Direction == load.Both {
		kind = backend.Echo
	}
	var preamble []byte
	if sv.accept {
		preamble = clientProxyHeader()
	}
	moved, err := pushPayload(ctx, inst.Addrs[kind], s.Direction, s.Payload, preamble)
	time.Sleep(200 * time.Millisecond)
	_ = inst.Stop()
	if err != nil {
		return nil, 0, err
	}
	prof, err := measure.ParseStraceFile(out)
	if err != nil {
		return nil, 0, err
	}
	return prof, float64(moved) / (1 << 20), nil
}

// pushPayload sends n bytes through addr (up: to a sink; both: to an echo,
// reading n back at the same time) and returns the bytes that crossed.
func pushPayload(ctx context.Context, addr, direction string, n int64, preamble []byte) (int64, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
	readDone := make(chan error, 1)
	var read int64
	go func() {
		var err error
		read, err = io.Copy(io.Discard, c)
		readDone <- err
	}()
	if _, err := c.Write(preamble); err != nil {
		return 0, fmt.Errorf("send PROXY header: %w", err)
	}
	if _, err := io.Copy(c, io.LimitReader(payload.Zeros{}, n)); err != nil {
		return 0, fmt.Errorf("send payload: %w", err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, err
	}
	if err := <-readDone; err != nil {
		return 0, fmt.Errorf("read back: %w", err)
	}
	if direction == load.Both {
		if read != n {
			return 0, errors.New("echo returned " + fmt.Sprint(read) + " of " + fmt.Sprint(n) + " bytes")
		}
		return 2 * n, nil
	}
	return n, nil
}

// verdictChanges compares this run's verdicts with the latest earlier run
// under the same output folder that has a syscalls section.
func verdictChanges(outRoot, thisDir string, res *report.Results) []string {
	entries, err := os.ReadDir(outRoot)
	if err != nil {
		return nil
	}
	var prev *report.Results
	prevName := ""
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if !e.IsDir() || filepath.Join(outRoot, e.Name()) == thisDir {
			continue
		}
		r, err := report.Load(filepath.Join(outRoot, e.Name(), "results.json"))
		if err == nil && len(r.Syscalls) > 0 {
			prev, prevName = r, e.Name()
			break
		}
	}
	if prev == nil {
		return nil
	}
	var out []string
	for _, now := range res.Syscalls {
		for _, old := range prev.Syscalls {
			if old.Scenario == now.Scenario && old.Target == now.Target && old.Verdict != now.Verdict {
				out = append(out, fmt.Sprintf("**%s in %s changed its data path verdict from `%s` (run %s) to `%s`**", now.Target, now.Scenario, old.Verdict, prevName, now.Verdict))
			}
		}
	}
	return out
}
