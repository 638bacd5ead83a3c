// Command pacefloor measures the lateness this machine puts under the
// open-loop clients' pacer (bench/load) when there is nothing else to do:
// no design, no load, no sends, only the pacer waking at the rate
// tcp-rr-open and udp-echo use. Whatever lateness it shows, every paced
// sample of every design carries at least as much.
//
//	go run ./scripts/pacefloor [rate per second] [runs]
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/l4bench/l4bench/bench/load"
)

const (
	runFor = 3 * time.Second
	limit  = 20 * time.Microsecond
)

func main() {
	rate, runs := 2000, 5
	if len(os.Args) > 1 {
		rate = atoi(os.Args[1], "rate")
	}
	if len(os.Args) > 2 {
		runs = atoi(os.Args[2], "runs")
	}
	fmt.Printf("pacer alone at %d wake-ups/s, %d runs of %v\n", rate, runs, runFor)
	fmt.Printf("%4s %12s %12s %12s %14s\n", "run", "p50 µs", "p99 µs", "max µs", "late >20 µs")
	for i := 1; i <= runs; i++ {
		l, over := load.PaceOnly(context.Background(), rate, runFor, limit)
		fmt.Printf("%4d %12.2f %12.2f %12.1f %13.2f%%\n", i, l.P50, l.P99, l.Max, 100*over)
	}
}

func atoi(s, what string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		fmt.Fprintf(os.Stderr, "pacefloor: %s %q is not a positive whole number (usage: pacefloor [rate] [runs])\n", what, s)
		os.Exit(2)
	}
	return n
}
