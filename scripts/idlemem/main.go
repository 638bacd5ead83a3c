// Command idlemem breaks down what an idle connection costs l4proxy's
// code, per strategy: the process's RSS, the Go runtime's own split of its
// memory (goroutine stacks, live heap objects, heap kept but unused,
// runtime metadata), goroutines, fds and pipes, each the difference
// between holding n idle connections (after 64 KiB crossed each) and
// holding none, divided by n.
//
// The proxy runs in a child process of this command (GOMAXPROCS=1, as in
// l4bench), built from the same proxy package as l4proxy, so that it can
// read runtime/metrics from inside; the client and the echo backend run
// here. l4proxy itself carries no debug endpoint: one on net/http doubled
// its binary and the CI gate failed it on RSS.
//
//	go run ./scripts/idlemem [-conns 3000] [splice lazysplice pooled buffered]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"time"

	"github.com/l4bench/l4bench/bench/backend"
	"github.com/l4bench/l4bench/bench/load"
	"github.com/l4bench/l4bench/bench/measure"
	"github.com/l4bench/l4bench/proxy"
	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

// memoryClasses are the runtime/metrics the breakdown reads.
var memoryClasses = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/os-stacks:bytes",
	"/memory/classes/metadata/other:bytes",
	"/memory/classes/metadata/mspan/inuse:bytes",
	"/memory/classes/metadata/mcache/inuse:bytes",
	"/memory/classes/profiling/buckets:bytes",
	"/memory/classes/other:bytes",
	"/sched/goroutines:goroutines",
}

func main() {
	if len(os.Args) == 4 && os.Args[1] == "serve" {
		serve(os.Args[2], os.Args[3])
		return
	}
	conns := flag.Int("conns", 3000, "idle connections")
	flag.Parse()
	strategies := flag.Args()
	if len(strategies) == 0 {
		strategies = copystrat.Names()
	}
	echo, err := backend.Start(backend.Echo, "127.0.0.1:0", false, 0)
	check(err)
	defer echo.Close()
	cols := []struct{ key, label string }{
		{"rss", "RSS"}, {"stacks", "goroutine stacks"}, {"heap_objects", "live heap objects"},
		{"heap_unused", "heap kept, unused"}, {"metadata", "runtime metadata"}, {"other_runtime", "other runtime"},
		{"goroutines", "goroutines"}, {"fds", "fds"}, {"pipes", "pipe fds"},
	}
	fmt.Printf("per idle connection, %d connections, 64 KiB echoed on each first\n\n| strategy |", *conns)
	for _, c := range cols {
		fmt.Printf(" %s |", c.label)
	}
	fmt.Print("\n| --- |")
	for range cols {
		fmt.Print(" ---: |")
	}
	fmt.Println()
	for _, s := range strategies {
		per, err := breakdown(s, echo.Addr(), *conns)
		check(err)
		fmt.Printf("| %s |", s)
		for _, c := range cols {
			switch c.key {
			case "goroutines", "fds", "pipes":
				fmt.Printf(" %.2f |", per[c.key])
			default:
				fmt.Printf(" %.1f KiB |", per[c.key]/1024)
			}
		}
		fmt.Println()
	}
}

// serve is the child: the proxy on a loopback port, its address on the
// first line of stdout, then one JSON line of runtime/metrics (after a
// collection) for every line read on stdin.
func serve(strategy, backendAddr string) {
	yaml := fmt.Sprintf("entryPoints:\n  web:\n    address: \"127.0.0.1:0\"\n    service: app\ntcp:\n  services:\n    app:\n      loadBalancer:\n        strategy: %s\n        servers:\n          - address: %q\n", strategy, backendAddr)
	cfg, err := proxy.ParseConfig("idlemem.yaml", []byte(yaml))
	check(err)
	m, err := cfg.Validate()
	check(err)
	srv := proxy.NewServer(m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	check(srv.Listen())
	go func() { _ = srv.Serve() }()
	for _, a := range srv.Addrs() {
		fmt.Println(a)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		runtime.GC()
		samples := make([]metrics.Sample, len(memoryClasses))
		for i, n := range memoryClasses {
			samples[i].Name = n
		}
		metrics.Read(samples)
		out := map[string]uint64{}
		for _, s := range samples {
			if s.Value.Kind() == metrics.KindUint64 {
				out[s.Name] = s.Value.Uint64()
			}
		}
		data, _ := json.Marshal(out)
		fmt.Println(string(data))
	}
}

type reading struct {
	rss, fds, pipes float64
	metrics         map[string]uint64
}

func breakdown(strategy, backendAddr string, n int) (map[string]float64, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "serve", strategy, backendAddr)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	out := bufio.NewScanner(stdout)
	if !out.Scan() {
		return nil, fmt.Errorf("%s: the proxy did not start", strategy)
	}
	listen := strings.TrimSpace(out.Text())
	read := func() (reading, error) {
		r := reading{metrics: map[string]uint64{}}
		if _, err := fmt.Fprintln(stdin, "read"); err != nil {
			return r, err
		}
		if !out.Scan() {
			return r, fmt.Errorf("%s: no reading", strategy)
		}
		if err := json.Unmarshal(out.Bytes(), &r.metrics); err != nil {
			return r, err
		}
		return r, procStats(cmd.Process.Pid, &r)
	}
	// Warm up once (pools, first stacks), then the baseline.
	warm, err := load.OpenIdle(context.Background(), listen, 50, 65536)
	if err != nil {
		return nil, err
	}
	warm.Close()
	time.Sleep(500 * time.Millisecond)
	before, err := read()
	if err != nil {
		return nil, err
	}
	idle, err := load.OpenIdle(context.Background(), listen, n, 65536)
	if err != nil {
		return nil, err
	}
	defer idle.Close()
	time.Sleep(500 * time.Millisecond)
	after, err := read()
	if err != nil {
		return nil, err
	}
	d := func(a, b float64) float64 { return (a - b) / float64(n) }
	m := func(k string) float64 { return d(float64(after.metrics[k]), float64(before.metrics[k])) }
	return map[string]float64{
		"rss":           d(after.rss, before.rss),
		"stacks":        m("/memory/classes/heap/stacks:bytes"),
		"heap_objects":  m("/memory/classes/heap/objects:bytes"),
		"heap_unused":   m("/memory/classes/heap/unused:bytes") + m("/memory/classes/heap/free:bytes"),
		"metadata":      m("/memory/classes/metadata/other:bytes") + m("/memory/classes/metadata/mspan/inuse:bytes") + m("/memory/classes/metadata/mcache/inuse:bytes"),
		"other_runtime": m("/memory/classes/other:bytes") + m("/memory/classes/os-stacks:bytes") + m("/memory/classes/profiling/buckets:bytes"),
		"goroutines":    m("/sched/goroutines:goroutines"),
		"fds":           d(after.fds, before.fds),
		"pipes":         d(after.pipes, before.pipes),
	}, nil
}

// procStats reads the child's RSS and fds (bench/measure, as tcp-idle
// does) and counts its pipe fds.
func procStats(pid int, r *reading) error {
	st, err := measure.ReadProc(pid)
	if err != nil {
		return err
	}
	r.rss, r.fds = float64(st.RSSKiB*1024), float64(st.FDs)
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, fd := range fds {
		if link, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && strings.HasPrefix(link, "pipe:") {
			r.pipes++
		}
	}
	return nil
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "idlemem:", err)
		os.Exit(1)
	}
}
