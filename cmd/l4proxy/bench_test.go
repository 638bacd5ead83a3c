package main

import (
	"context"
	"flag"
	"syscall"
	"testing"
	"time"

	"github.com/l4bench/l4bench/bench/backend"
	"github.com/l4bench/l4bench/bench/load"
	"github.com/l4bench/l4bench/bench/measure"
	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

// The default fits a 20000-fd hard limit (RLIMIT_NOFILE, which a process
// without CAP_SYS_RESOURCE cannot raise): l4proxy with splice holds six
// fds per idle connection (two sockets, two pipes), and this test process
// holds the client and backend sockets.
var (
	idleConns  = flag.Int("idle-conns", 3000, "connections held open by BenchmarkIdleConn")
	idleWarmup = flag.Int("idle-warmup", 64<<10, "bytes echoed on each connection before it idles")
)

// BenchmarkIdleConn measures, from outside the l4proxy process, the RSS
// and fds that each idle connection costs per strategy, after a 64 KiB
// echo on each (so that buffers have been filled once, as after real
// traffic: a buffer only counts in RSS once its pages are touched), plus
// the kernel's slab growth, where splice's pipes live. Run with -benchtime 1x.
//
//	go test -run '^$' -bench IdleConn -benchtime 1x ./cmd/l4proxy
func BenchmarkIdleConn(b *testing.B) {
	raiseFDLimit(b, 2**idleConns+1000)
	for _, strategy := range copystrat.Names() {
		b.Run(strategy, func(b *testing.B) {
			echo, err := backend.Start(backend.Echo, "127.0.0.1:0", false, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer echo.Close()
			p := startProxy(b, "", "--listen", "127.0.0.1:0", "--backend", echo.Addr(), "--strategy", strategy)
			defer func() { _ = p.stop(b) }()
			time.Sleep(200 * time.Millisecond)
			// The same measurement as l4bench's tcp-idle scenario.
			cost, err := measure.MeasureIdle(*idleConns, func() []int { return []int{p.pid} }, func() (func(), error) {
				conns, err := load.OpenIdle(context.Background(), p.addr, *idleConns, *idleWarmup)
				if err != nil {
					return nil, err
				}
				return conns.Close, nil
			}, 500*time.Millisecond)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(cost.RSSKiB, "KiB-rss/conn")
			b.ReportMetric(cost.FDs, "fds/conn")
			b.ReportMetric(cost.SlabKiB, "KiB-slab/conn")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func raiseFDLimit(b *testing.B, n int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur >= uint64(n) {
		return
	}
	lim.Cur = uint64(n)
	if lim.Max < lim.Cur {
		lim.Max = lim.Cur // needs root (CAP_SYS_RESOURCE)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatalf("cannot raise the fd limit to %d (%v): lower -idle-conns", n, err)
	}
}
