package measure

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// SchedStats is what the scheduler did for a set of processes, summed over
// their threads (/proc/PID/task/TID/schedstat and status): how long they
// ran, how long they waited runnable on a run queue, how often they went
// off a CPU, and how often they moved to another CPU (sched). Threads that exited between two samples take their
// counts with them, so compare samples of long-lived threads only.
type SchedStats struct {
	RunSeconds  float64 // on a CPU
	WaitSeconds float64 // runnable, waiting for a CPU
	Slices      int64   // times put on a CPU
	Voluntary   int64   // left the CPU to wait (a sleep, a blocking call)
	Involuntary int64   // taken off the CPU (preempted)
	Migrations  int64   // moved to another CPU
	Threads     int
}

// ReadSched sums the scheduler's counts of every thread of pids.
func ReadSched(pids []int) (SchedStats, error) {
	var sum SchedStats
	for _, pid := range pids {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return sum, err
		}
		for _, t := range tasks {
			dir := filepath.Join(fmt.Sprintf("/proc/%d/task", pid), t.Name())
			s, err := readThreadSched(dir)
			if err != nil {
				if os.IsNotExist(err) {
					continue // exited since the listing
				}
				return sum, err
			}
			sum.RunSeconds += s.RunSeconds
			sum.WaitSeconds += s.WaitSeconds
			sum.Slices += s.Slices
			sum.Voluntary += s.Voluntary
			sum.Involuntary += s.Involuntary
			sum.Migrations += s.Migrations
			sum.Threads++
		}
	}
	return sum, nil
}

// Sub is s minus an earlier sample.
func (s SchedStats) Sub(before SchedStats) SchedStats {
	return SchedStats{
		RunSeconds:  s.RunSeconds - before.RunSeconds,
		WaitSeconds: s.WaitSeconds - before.WaitSeconds,
		Slices:      s.Slices - before.Slices,
		Voluntary:   s.Voluntary - before.Voluntary,
		Involuntary: s.Involuntary - before.Involuntary,
		Migrations:  s.Migrations - before.Migrations,
		Threads:     s.Threads,
	}
}

func readThreadSched(dir string) (SchedStats, error) {
	var s SchedStats
	b, err := os.ReadFile(filepath.Join(dir, "schedstat"))
	if err != nil {
		return s, err
	}
	if s, err = parseSchedstat(string(b)); err != nil {
		return s, fmt.Errorf("%s/schedstat: %w", dir, err)
	}
	status, err := readKeyed(filepath.Join(dir, "status"))
	if err != nil {
		return s, err
	}
	s.Voluntary = status["voluntary_ctxt_switches"]
	s.Involuntary = status["nonvoluntary_ctxt_switches"]
	sched, err := readKeyed(filepath.Join(dir, "sched"))
	if err != nil {
		return s, err
	}
	s.Migrations = sched["se.nr_migrations"]
	return s, nil
}

// parseSchedstat reads a thread's schedstat line: nanoseconds on a CPU,
// nanoseconds waiting on a run queue, and time slices.
func parseSchedstat(line string) (SchedStats, error) {
	var s SchedStats
	f := strings.Fields(line)
	if len(f) != 3 {
		return s, fmt.Errorf("want 3 fields, got %q", strings.TrimSpace(line))
	}
	var n [3]int64
	for i, v := range f {
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return s, fmt.Errorf("field %d of %q: %w", i+1, strings.TrimSpace(line), err)
		}
		n[i] = x
	}
	s.RunSeconds, s.WaitSeconds, s.Slices = float64(n[0])/1e9, float64(n[1])/1e9, n[2]
	return s, nil
}
