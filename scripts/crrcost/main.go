// Command crrcost measures what one new connection costs a design: the
// connect-request-response-close loop of tcp-crr against an echo backend,
// and for each design the connection rate, the design's own CPU time per
// connection (utime + stime of its processes, from /proc) and how much of
// it was user mode, the whole machine's busy time per connection (the
// load client, the echo backend and softirqs included: the kernel's TCP
// work that every design shares), and, in a separate run under strace -f,
// its syscalls per connection by name. From the scheduler's counts of
// every thread (/proc/PID/task/TID/schedstat): how often the design went
// on a CPU per connection, how many of its leavings were preemptions, and
// how long it and this process (the load client and the echo backend)
// waited runnable on a run queue per connection, which a closed-loop
// client pays in rate where CPU time alone does not show it; and the
// machine's idle time per connection (its CPUs × the wall time, less the
// busy time): where nothing ran while a connection waited, a wake-up's
// latency and not CPU time set the rate.
//
//	go run ./scripts/crrcost [-duration 3s] [-rounds 3] [-design-workers 1] [design ...]
//
// The designs are l4bench's targets (default: l4proxy-splice, l4proxy-loop,
// l4proxy-loopsplice, haproxy-splice, nginx), started by bench/target with
// the configs a run writes; l4proxy is bin/l4proxy (make build). The
// designs' rounds are interleaved. It answers where a design's time per
// connection goes, next to haproxy's and nginx's; it is not a benchmark
// with confidence intervals (l4bench run --scenario tcp-crr is).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/l4bench/l4bench/bench/backend"
	"github.com/l4bench/l4bench/bench/load"
	"github.com/l4bench/l4bench/bench/measure"
	"github.com/l4bench/l4bench/bench/stats"
	"github.com/l4bench/l4bench/bench/target"
)

func main() {
	duration := flag.Duration("duration", 3*time.Second, "each round's load")
	rounds := flag.Int("rounds", 3, "rounds per design, interleaved")
	workers := flag.Int("workers", 2, "parallel connect loops (tcp-crr's)")
	designWorkers := flag.Int("design-workers", 1, "the designs' worker processes or threads (l4bench run --workers)")
	bin := flag.String("l4proxy", "bin/l4proxy", "the l4proxy binary")
	flag.Parse()
	designs := flag.Args()
	if len(designs) == 0 {
		designs = []string{"l4proxy-splice", "l4proxy-loop", "l4proxy-loopsplice", "haproxy-splice", "nginx"}
	}
	abs, err := filepath.Abs(*bin)
	check(err)
	target.L4ProxyPath = abs
	echo, err := backend.Start(backend.Echo, "127.0.0.1:0", false, 0)
	check(err)
	defer echo.Close()
	dir, err := os.MkdirTemp("", "crrcost")
	check(err)
	defer os.RemoveAll(dir)

	type cost struct {
		rounds []measured // one per round that completed
		calls  map[string]float64
		total  float64
	}
	costs := map[string]*cost{}
	for _, d := range designs {
		costs[d] = &cost{}
	}
	for r := range *rounds {
		for _, d := range designs {
			m, err := timed(d, dir, echo.Addr(), *duration, *workers, *designWorkers)
			if err != nil {
				fmt.Fprintf(os.Stderr, "crrcost: %s round %d: %v\n", d, r+1, err)
				continue
			}
			costs[d].rounds = append(costs[d].rounds, m)
		}
	}
	for _, d := range designs {
		calls, total, err := traced(d, dir, echo.Addr(), *duration, *workers, *designWorkers)
		if err != nil {
			fmt.Fprintf(os.Stderr, "crrcost: %s under strace: %v\n", d, err)
			continue
		}
		costs[d].calls, costs[d].total = calls, total
	}

	fmt.Printf("tcp-crr against an echo backend, %d connect loops, designs with %d workers, %d rounds of %s (median); syscalls from one run under strace -f\n\n", *workers, *designWorkers, *rounds, *duration)
	// table prints one markdown table, a row per design that ran, from
	// the medians of its rounds.
	table := func(header, align string, row func(m measured, c *cost) string) {
		fmt.Println(header)
		fmt.Println(align)
		for _, d := range designs {
			if c := costs[d]; len(c.rounds) > 0 {
				fmt.Printf("| %s | %s |\n", d, row(medians(c.rounds), c))
			}
		}
	}
	table("| design | conn/s | design CPU per connection | of which user mode | client and backend CPU per connection | machine busy per connection | machine idle per connection | syscalls per connection | the most frequent |",
		"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
		func(m measured, c *cost) string {
			return fmt.Sprintf("%.0f | %.0f µs | %.0f µs | %.0f µs | %.0f µs | %.0f µs | %.1f | %s", m.rate, m.cpu, m.user,
				m.client, m.host, m.idle, c.total, top(c.calls, 8))
		})
	fmt.Print("\nThe scheduler's counts per connection (every thread's schedstat, status and sched)\n\n")
	table("| design | design on a CPU | of which after a preemption | design moves to another CPU | design run-queue wait | client and backend run-queue wait |",
		"| --- | ---: | ---: | ---: | ---: | ---: |",
		func(m measured, c *cost) string {
			return fmt.Sprintf("%.2f | %.2f | %.2f | %.1f µs | %.1f µs", m.slices, m.preempted, m.migrations, m.wait, m.cwait)
		})
	fmt.Print("\nThe machine's TCP counters per connection (/proc/net/snmp and netstat: the load client's, the backend's and the design's packets together)\n\n")
	table("| design | segments sent | resets sent | delayed ACKs |",
		"| --- | ---: | ---: | ---: |",
		func(m measured, c *cost) string {
			return fmt.Sprintf("%.2f | %.3f | %.3f", m.segs, m.rsts, m.delacks)
		})
}

// measured is one round of one design, per connection: the design's CPU
// µs and the user-mode part of them; the CPU µs of this process (the
// load client and the echo backend); the whole machine's busy and idle
// µs and its TCP segments, resets and delayed ACKs; the design's times
// on a CPU, preemptions and moves between CPUs; and the µs the design and
// this process waited on a run queue.
type measured struct {
	rate, cpu, user, host, idle   float64
	client                        float64 // this process's CPU µs (the load client and the echo backend)
	segs, rsts, delacks           float64 // the machine's TCP segments and resets sent, delayed ACKs
	slices, preempted, migrations float64
	wait, cwait                   float64
}

// fields lists m's figures, for medians.
func (m *measured) fields() []*float64 {
	return []*float64{&m.rate, &m.cpu, &m.user, &m.host, &m.idle, &m.client, &m.segs, &m.rsts, &m.delacks,
		&m.slices, &m.preempted, &m.migrations, &m.wait, &m.cwait}
}

// medians is each figure's median over the rounds.
func medians(rounds []measured) measured {
	var out measured
	for i, f := range out.fields() {
		xs := make([]float64, len(rounds))
		for j := range rounds {
			xs[j] = *rounds[j].fields()[i]
		}
		*f = stats.Median(xs)
	}
	return out
}

// sample is what timed reads before and after a round: the design's
// processes and this one's (CPU, scheduler), the machine's busy time and
// TCP counters, and the wall clock.
type sample struct {
	design, own           measure.ProcStats
	designSched, ownSched measure.SchedStats
	busy                  float64
	net                   map[string]int64
	at                    time.Time
}

func take(design []int) (sample, error) {
	var s sample
	var err error
	self := []int{os.Getpid()}
	if s.design, err = measure.ReadProcs(design); err != nil {
		return s, err
	}
	if s.own, err = measure.ReadProcs(self); err != nil {
		return s, err
	}
	if s.designSched, err = measure.ReadSched(design); err != nil {
		return s, err
	}
	if s.ownSched, err = measure.ReadSched(self); err != nil {
		return s, err
	}
	if s.busy, err = measure.BusySeconds(); err != nil {
		return s, err
	}
	if s.net, err = measure.NetCounters(); err != nil {
		return s, err
	}
	s.at = time.Now()
	return s, nil
}

// timed runs one round of the load against a fresh instance of d.
func timed(d, dir, echo string, dur time.Duration, workers, designWorkers int) (measured, error) {
	inst, err := start(d, dir, echo, designWorkers, nil)
	if err != nil {
		return measured{}, err
	}
	defer inst.Stop()
	b, err := take(inst.PIDs())
	if err != nil {
		return measured{}, err
	}
	res, err := run(inst, dur, workers)
	if err != nil {
		return measured{}, err
	}
	a, err := take(inst.PIDs())
	if err != nil {
		return measured{}, err
	}
	if res.Conns == 0 {
		return measured{}, fmt.Errorf("no connection completed in %s", dur)
	}
	sched, client := a.designSched.Sub(b.designSched), a.ownSched.Sub(b.ownSched)
	busy, wall := a.busy-b.busy, a.at.Sub(b.at).Seconds()
	conns := float64(res.Conns)
	net := func(key string) float64 { return float64(a.net[key]-b.net[key]) / conns }
	per := 1e6 / conns
	return measured{
		rate:       res.Rate(),
		cpu:        (a.design.CPUSeconds + a.design.ChildCPUSeconds - b.design.CPUSeconds - b.design.ChildCPUSeconds) * per,
		user:       (a.design.UserSeconds - b.design.UserSeconds) * per,
		host:       busy * per,
		idle:       (float64(runtime.NumCPU())*wall - busy) * per,
		client:     (a.own.CPUSeconds - b.own.CPUSeconds) * per,
		segs:       net("Tcp.OutSegs"),
		rsts:       net("Tcp.OutRsts"),
		delacks:    net("TcpExt.DelayedACKs"),
		slices:     float64(sched.Slices) / conns,
		preempted:  float64(sched.Involuntary) / conns,
		migrations: float64(sched.Migrations) / conns,
		wait:       sched.WaitSeconds * per,
		cwait:      client.WaitSeconds * per,
	}, nil
}

// traced runs the load once with d under strace -f and returns its
// syscalls per connection by name, and their total.
func traced(d, dir, echo string, dur time.Duration, workers, designWorkers int) (map[string]float64, float64, error) {
	strace, err := measure.StracePath()
	if err != nil {
		return nil, 0, err
	}
	out := filepath.Join(dir, d+".strace")
	inst, err := start(d, dir, echo, designWorkers, []string{strace, "-f", "-qq", "-s", "0", "-o", out})
	if err != nil {
		return nil, 0, err
	}
	res, err := run(inst, dur, workers)
	_ = inst.Stop()
	if err != nil {
		return nil, 0, err
	}
	prof, err := measure.ParseStraceFile(out)
	if err != nil {
		return nil, 0, err
	}
	per, total := map[string]float64{}, 0.0
	for name, n := range prof.Calls {
		per[name] = float64(n) / float64(res.Conns)
		total += per[name]
	}
	return per, total, nil
}

func start(d, dir, echo string, workers int, wrap []string) (*target.Instance, error) {
	t, err := target.Lookup(d)
	if err != nil {
		return nil, err
	}
	if _, err := t.Check(); err != nil {
		return nil, err
	}
	return t.Start(target.Spec{Dir: dir, Backends: map[string]string{backend.Echo: echo}, Workers: workers, Wrap: wrap})
}

func run(inst *target.Instance, dur time.Duration, workers int) (load.CRRResult, error) {
	addr, ok := inst.Addrs[backend.Echo]
	if !ok {
		return load.CRRResult{}, fmt.Errorf("%s has no echo entrypoint", inst.Target)
	}
	var o load.CRROptions
	o.Addr, o.Duration, o.Workers = addr, dur, workers
	return load.CRR(context.Background(), o)
}

// top lists the n most frequent syscalls per connection.
func top(calls map[string]float64, n int) string {
	names := make([]string, 0, len(calls))
	for k := range calls {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if calls[names[i]] != calls[names[j]] {
			return calls[names[i]] > calls[names[j]]
		}
		return names[i] < names[j]
	})
	var parts []string
	for _, k := range names[:min(n, len(names))] {
		parts = append(parts, fmt.Sprintf("%s %.1f", k, calls[k]))
	}
	return strings.Join(parts, ", ")
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "crrcost:", err)
		os.Exit(1)
	}
}
