package load

import (
	"context"
	"runtime"
	"slices"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"
)

// A pacer releases sends at their intended times, for the open-loop
// clients. time.Sleep is not precise enough: Go's timers wake through
// epoll with a millisecond timeout, so a sub-millisecond sleep overshoots
// by about half a millisecond on average, and that lateness would be
// measured as latency of the design. The pacer instead runs on a locked
// OS thread with a timer slack of 1 ns and nice -10, sleeps in
// clock_nanosleep until a little before the intended time, and spins the
// rest. How early it wakes
// follows the wake-up overshoots it has seen recently (about their 99th
// percentile), so it spins only as long as this machine's timers need.
//
// Every wait's lateness (when the send is released, after the intended
// time) is recorded, so the results show how well the schedule was kept.
type pacer struct {
	ctx       context.Context
	start     time.Time // the schedule's first intended time
	startMono int64     // CLOCK_MONOTONIC at start, in ns
	overshoot [256]time.Duration
	next      int
	early     time.Duration
	Lateness  *hdrhistogram.Histogram // ns
}

const (
	minEarly = 20 * time.Microsecond
	maxEarly = 2 * time.Millisecond
	// longestSleep bounds one clock_nanosleep, so a cancelled context is
	// seen within it.
	longestSleep = 50 * time.Millisecond
)

// newLatenessHist records lateness in nanoseconds, 1 ns to 60 s.
func newLatenessHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000_000, 3) }

// runPaced runs fn on a goroutine locked to its own OS thread, with a
// pacer whose schedule starts (p.start) once that thread is ready, and
// waits for it. Handing work to a locked thread that already waits can
// take milliseconds here, so the schedule is made on the thread itself.
// The thread is never unlocked: it exits with the goroutine, and its timer
// slack is never handed to other goroutines.
func runPaced(ctx context.Context, fn func(p *pacer)) *hdrhistogram.Histogram {
	p := &pacer{ctx: ctx, early: 200 * time.Microsecond, Lateness: newLatenessHist()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
		// A higher priority keeps the scheduler from preempting the spin
		// for a woken thread; it needs root, and is skipped without it.
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), -10)
		var ts unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		now := time.Now()
		p.start = now.Add(100 * time.Microsecond)
		p.startMono = ts.Nano() + int64(p.start.Sub(now))
		fn(p)
	}()
	<-done
	return p.Lateness
}

// wait blocks until the intended time at, and records and returns how
// late it let the caller go. It returns false if the context ended.
func (p *pacer) wait(at time.Time) bool {
	for {
		if p.ctx.Err() != nil {
			return false
		}
		d := time.Until(at) - p.early
		if d <= 0 {
			break
		}
		wake := time.Now().Add(min(d, longestSleep))
		ts := unix.NsecToTimespec(p.startMono + int64(wake.Sub(p.start)))
		for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &ts, nil) == unix.EINTR {
		}
		if d <= longestSleep {
			p.learn(time.Since(wake))
			break
		}
	}
	for time.Now().Before(at) {
	}
	late := time.Since(at)
	_ = p.Lateness.RecordValue(max(int64(late), 1))
	return true
}

// learn keeps the last 256 overshoots of clock_nanosleep and wakes early
// by the third largest of them (about their 99th percentile), plus a
// quarter. One preemption of the VM does not make it spin for
// milliseconds on the next sends; scripts/pacefloor shows what is left.
func (p *pacer) learn(over time.Duration) {
	p.overshoot[p.next%len(p.overshoot)] = over
	p.next++
	seen := slices.Clone(p.overshoot[:min(p.next, len(p.overshoot))])
	slices.Sort(seen)
	high := seen[max(len(seen)-3, 0)]
	p.early = min(max(high+high/4, minEarly), maxEarly)
}

// Lateness summarises a pacer's lateness histogram in microseconds.
type Lateness struct {
	Count    int64
	P50, P99 float64 // µs
	Max      float64 // µs
}

// PaceOnly runs the pacer alone, with nothing to send, at rate wake-ups
// per second for dur: the lateness this machine's timers and scheduler put
// under any paced client, with no design and no load beside it. It
// returns the summary and the fraction of wake-ups late by over limit.
func PaceOnly(ctx context.Context, rate int, dur time.Duration, limit time.Duration) (Lateness, float64) {
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	gap := time.Second / time.Duration(rate)
	h := runPaced(ctx, func(p *pacer) {
		for i := 0; p.wait(p.start.Add(time.Duration(i) * gap)); i++ {
		}
	})
	var over int64
	for _, b := range h.Distribution() {
		if b.From > int64(limit) {
			over += b.Count
		}
	}
	return summarizeLateness(h), float64(over) / float64(max(h.TotalCount(), 1))
}

func summarizeLateness(h *hdrhistogram.Histogram) Lateness {
	if h == nil || h.TotalCount() == 0 {
		return Lateness{}
	}
	return Lateness{
		Count: h.TotalCount(),
		P50:   float64(h.ValueAtQuantile(50)) / 1e3,
		P99:   float64(h.ValueAtQuantile(99)) / 1e3,
		Max:   float64(h.Max()) / 1e3,
	}
}
