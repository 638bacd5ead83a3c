package measure

import (
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestParseSchedstat(t *testing.T) {
	tests := []struct {
		line    string
		want    SchedStats
		wantErr string
	}{
		{line: "1500000000 250000000 42\n", want: SchedStats{RunSeconds: 1.5, WaitSeconds: 0.25, Slices: 42}},
		{line: "0 0 0", want: SchedStats{}},
		{line: "1 2", wantErr: "want 3 fields"},
		{line: "1 x 3", wantErr: "field 2"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := parseSchedstat(tt.line)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// This process's threads: sleeping 20 times leaves the CPU at least 20
// times of its own accord, and spinning for 50 ms of its CPU time adds at
// least that much run time.
func TestReadSchedCountsThisProcess(t *testing.T) {
	pids := []int{os.Getpid()}
	before, err := ReadSched(pids)
	require.NoError(t, err)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for range 20 {
		time.Sleep(time.Millisecond)
	}
	// 50 ms of this thread's CPU time, however often it is preempted.
	start := threadCPU(t)
	for threadCPU(t)-start < 50*time.Millisecond {
	}
	after, err := ReadSched(pids)
	require.NoError(t, err)
	d := after.Sub(before)
	assert.GreaterOrEqual(t, d.Voluntary, int64(20))
	assert.GreaterOrEqual(t, d.Slices, int64(20))
	assert.GreaterOrEqual(t, d.RunSeconds, 0.05)
	assert.GreaterOrEqual(t, d.WaitSeconds, 0.0)
	assert.GreaterOrEqual(t, after.Threads, 1)
}

// A thread moved from one allowed CPU to another counts a migration.
func TestReadSchedCountsMigrations(t *testing.T) {
	var allowed unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &allowed))
	var cpus []int
	for i := range 1024 {
		if allowed.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) < 2 {
		t.Skipf("one CPU allowed (%v): no migration to make", cpus)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer func() { _ = unix.SchedSetaffinity(0, &allowed) }()
	pin := func(cpu int) {
		var set unix.CPUSet
		set.Set(cpu)
		require.NoError(t, unix.SchedSetaffinity(0, &set))
	}
	pin(cpus[0])
	before, err := ReadSched([]int{os.Getpid()})
	require.NoError(t, err)
	pin(cpus[1])
	pin(cpus[0])
	after, err := ReadSched([]int{os.Getpid()})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, after.Sub(before).Migrations, int64(2))
}

func threadCPU(t *testing.T) time.Duration {
	var ts unix.Timespec
	require.NoError(t, unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts))
	return time.Duration(ts.Nano())
}

func TestReadSchedNoProcess(t *testing.T) {
	_, err := ReadSched([]int{1 << 30})
	require.Error(t, err)
}
