package measure

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The testdata files are strace -f outputs of l4proxy forwarding 1 MiB to
// a sink, recorded on Linux 6.18 with the arguments of StraceArgs.
func TestParseRecordedStrace(t *testing.T) {
	tests := []struct {
		file       string
		verdict    string
		minSpliced int64
		minUser    int64
	}{
		{"testdata/l4proxy-splice.strace", VerdictSplice, 1 << 20, 0},
		{"testdata/l4proxy-buffered.strace", VerdictUserspace, 0, 1 << 20},
		{"testdata/l4proxy-pooled.strace", VerdictUserspace, 0, 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(tt.file)
			require.NoError(t, err)
			defer f.Close()
			p, err := ParseStrace(f)
			require.NoError(t, err)
			assert.Equal(t, tt.verdict, p.Verdict(), p.String())
			assert.GreaterOrEqual(t, p.SpliceBytes(), tt.minSpliced)
			assert.GreaterOrEqual(t, p.UserspaceBytes(), tt.minUser)
			if tt.verdict == VerdictUserspace {
				assert.Zero(t, p.Calls["splice"])
			}
		})
	}
}

func TestParseInterleavedThreads(t *testing.T) {
	out := `101 splice(7, NULL, 9, NULL, 1048576, SPLICE_F_NONBLOCK <unfinished ...>
102 read(3, ""..., 16384)    = 16384
101 <... splice resumed>)    = 65536
102 write(4, ""..., 16384 <unfinished ...>
101 splice(8, NULL, 10, NULL, 65536, SPLICE_F_NONBLOCK) = 65536
102 <... write resumed>)     = 16384
102 read(3, 0xc000, 16384)   = -1 EAGAIN (Resource temporarily unavailable)
101 +++ exited with 0 +++
--- SIGURG {si_signo=SIGURG, si_code=SI_TKILL} ---
`
	p, err := ParseStrace(strings.NewReader(out))
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"splice": 2, "read": 2, "write": 1}, p.Calls)
	assert.Equal(t, int64(131072), p.Bytes["splice"])
	assert.Equal(t, int64(16384), p.Bytes["read"])
	assert.Equal(t, int64(16384), p.Bytes["write"])
	assert.Equal(t, 1, p.Errors["read"])
	assert.Equal(t, VerdictMixed, p.Verdict(), "65536 spliced and 16384 read: both over 5%")
}

func TestVerdictThresholds(t *testing.T) {
	tests := []struct {
		name          string
		spliced, user int64
		want          string
	}{
		{"nothing", 0, 0, VerdictNone},
		{"all splice", 2 << 20, 4000, VerdictSplice},
		{"all userspace", 0, 1 << 20, VerdictUserspace},
		{"mostly userspace", 2 * 10000, 1 << 20, VerdictUserspace},
		{"half and half", 2 << 20, 1 << 20, VerdictMixed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Profile{Bytes: map[string]int64{"splice": tt.spliced, "read": tt.user}}
			assert.Equal(t, tt.want, p.Verdict())
		})
	}
}

func TestReadProcSelf(t *testing.T) {
	s, err := ReadProc(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, s.RSSKiB)
	assert.Positive(t, s.Threads)
	assert.Positive(t, s.FDs)
	m, err := Meminfo()
	require.NoError(t, err)
	assert.Positive(t, m["MemTotal"])
	assert.Contains(t, m, "Slab")
}

// TestCPUTimesFollowWork: spinning in user mode shows in the process's
// user time and in the machine's busy time, and user time is part of the
// process's CPU time.
func TestCPUTimesFollowWork(t *testing.T) {
	before, err := ReadProc(os.Getpid())
	require.NoError(t, err)
	busyBefore, err := BusySeconds()
	require.NoError(t, err)
	// Spin until getrusage says 0.3 s more user time, for 3 s at most.
	userNow := func() time.Duration {
		var ru syscall.Rusage
		require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
		return time.Duration(ru.Utime.Nano())
	}
	x, start := 0, userNow()
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end) && userNow()-start < 300*time.Millisecond; {
		for i := range 10_000_000 {
			x += i
		}
	}
	after, err := ReadProc(os.Getpid())
	require.NoError(t, err)
	busyAfter, err := BusySeconds()
	require.NoError(t, err)
	assert.NotZero(t, x)
	assert.GreaterOrEqual(t, after.UserSeconds-before.UserSeconds, 0.2, "up to 3s of spinning in user mode")
	assert.GreaterOrEqual(t, busyAfter-busyBefore, 0.2, "the machine was busy at least while this process spun")
	assert.LessOrEqual(t, after.UserSeconds, after.CPUSeconds+after.ChildCPUSeconds)
}
