package copy

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/l4bench/l4bench/internal/fdlimit"
	"golang.org/x/sys/unix"
)

// The timer wheel fires each timer once, never early, in the tick it is
// due, and a removed or rescheduled timer does not fire at its old time.
func TestWheelFiresOnTimeAndOnce(t *testing.T) {
	origin := time.Unix(1000, 0)
	ms := time.Millisecond
	tests := []struct {
		name   string
		due    []time.Duration // one pair each
		remove []int           // pairs removed before advancing
		moveTo map[int]time.Duration
		at     time.Duration // advance to
		fired  []int
	}{
		{"none due yet", []time.Duration{5 * ms, 9 * ms}, nil, nil, 4 * ms, nil},
		{"due ones fire", []time.Duration{5 * ms, 9 * ms, 3 * ms}, nil, nil, 5 * ms, []int{2, 0}},
		{"a fraction of a tick is not early", []time.Duration{5*ms + 1}, nil, nil, 5 * ms, nil},
		{"removed never fires", []time.Duration{2 * ms, 3 * ms}, []int{0}, nil, 10 * ms, []int{1}},
		{"rescheduled fires at its new time", []time.Duration{2 * ms}, nil, map[int]time.Duration{0: 20 * ms}, 10 * ms, nil},
		{"beyond one turn of the wheel", []time.Duration{wheelSlots*ms + 7*ms, 7 * ms}, nil, nil, 8 * ms, []int{1}},
		{"a long sleep fires everything due", []time.Duration{wheelSlots*ms + 7*ms, 7 * ms}, nil, nil, 3 * wheelSlots * ms, []int{1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWheel(origin)
			pairs := make([]*loopPair, len(tt.due))
			for i, d := range tt.due {
				pairs[i] = &loopPair{}
				w.schedule(pairs[i], origin.Add(d))
			}
			for _, i := range tt.remove {
				w.remove(pairs[i])
			}
			for i, d := range tt.moveTo {
				w.schedule(pairs[i], origin.Add(d))
			}
			var fired []int
			w.advance(origin.Add(tt.at), func(p *loopPair) {
				for i := range pairs {
					if pairs[i] == p {
						fired = append(fired, i)
					}
				}
			})
			assert.ElementsMatch(t, tt.fired, fired)
			for _, i := range fired {
				assert.False(t, pairs[i].inWheel, "a fired timer is out of the wheel")
			}
			assert.Equal(t, len(tt.due)-len(tt.remove)-len(fired), w.n, "timers left")
			if w.n > 0 {
				next, ok := w.next()
				require.True(t, ok)
				assert.True(t, next.After(origin.Add(tt.at)), "the next wake-up is in the future")
			}
		})
	}
}

// loopRelay is a client and a backend with a taken-over pair between them.
type loopRelay struct {
	client, backend *net.TCPConn
	done            chan PairResult
}

func takeOver(t *testing.T, s PairStrategy, ctx context.Context, opts PairOptions) *loopRelay {
	t.Helper()
	r := &loopRelay{done: make(chan PairResult, 1)}
	var front, back *net.TCPConn
	r.client, front = loopbackPair(t)
	back, r.backend = loopbackPair(t)
	require.NoError(t, s.TakeOver(ctx, front, back, opts, func(res PairResult) { r.done <- res }))
	return r
}

func (r *loopRelay) result(t *testing.T) PairResult {
	t.Helper()
	select {
	case res := <-r.done:
		return res
	case <-time.After(10 * time.Second):
		t.Fatal("the pair did not end")
		return PairResult{}
	}
}

func loopbackPair(t *testing.T) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer ln.Close()
	a, err = net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	require.NoError(t, err)
	b, err = ln.AcceptTCP()
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a, b
}

func loopStrategies(t *testing.T) []PairStrategy {
	var out []PairStrategy
	for _, name := range Names() {
		s, err := Lookup(name)
		require.NoError(t, err)
		if ps, ok := s.(PairStrategy); ok {
			out = append(out, ps)
		}
	}
	require.Len(t, out, 2, "loop and loopsplice")
	return out
}

// What idle taken-over connections cost after bytes crossed them both
// ways: no goroutine each (one loop goroutine for all), no pipe, and the
// two sockets; when the last one ends, the loop goroutine is gone too.
func TestLoopIdleConnectionsHoldNoGoroutineNoPipe(t *testing.T) {
	const conns = 50
	for _, s := range loopStrategies(t) {
		t.Run(s.Name(), func(t *testing.T) {
			warm := takeOver(t, s, context.Background(), PairOptions{TerminationDelay: -1})
			exchangeLoop(t, warm)
			goroutines, pipes := runtime.NumGoroutine(), openPipes(t)
			var relays []*loopRelay
			for range conns {
				r := takeOver(t, s, context.Background(), PairOptions{TerminationDelay: -1})
				exchangeLoop(t, r)
				relays = append(relays, r)
			}
			// One loop per GOMAXPROCS for all of them; the warm one started one.
			assert.LessOrEqual(t, runtime.NumGoroutine()-goroutines, runtime.GOMAXPROCS(0)-1, "goroutines held by %d idle connections", conns)
			assert.LessOrEqual(t, openPipes(t)-pipes, 4, "pipe fds held by %d idle connections (the shared pool may keep a few)", conns)
			for _, r := range append(relays, warm) {
				require.NoError(t, r.client.Close())
				require.NoError(t, r.backend.Close())
				res := r.result(t)
				assert.Equal(t, EndDone, res.End)
				assert.Equal(t, int64(5), res.Sent)
				assert.Equal(t, int64(5), res.Received)
			}
		})
	}
}

func exchangeLoop(t *testing.T, r *loopRelay) {
	t.Helper()
	buf := make([]byte, 5)
	_, err := r.client.Write([]byte("hello"))
	require.NoError(t, err)
	_, err = io.ReadFull(r.backend, buf)
	require.NoError(t, err)
	_, err = r.backend.Write([]byte("world"))
	require.NoError(t, err)
	_, err = io.ReadFull(r.client, buf)
	require.NoError(t, err)
}

// A cancelled context ends a pair at once, as shutdown, whether it is
// cancelled before the take-over or during it.
func TestLoopContextEndsThePair(t *testing.T) {
	for _, s := range loopStrategies(t) {
		for _, before := range []bool{true, false} {
			t.Run(s.Name()+map[bool]string{true: "/cancelled before", false: "/cancelled during"}[before], func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if before {
					cancel()
				}
				r := takeOver(t, s, ctx, PairOptions{TerminationDelay: -1})
				if !before {
					exchangeLoop(t, r)
					cancel()
				}
				res := r.result(t)
				assert.Equal(t, EndShutdown, res.End)
				assert.NoError(t, res.Err)
				_ = r.client.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err := r.client.Read(make([]byte, 1))
				assert.Error(t, err, "the client's connection is closed")
			})
		}
	}
}

// A bulk transfer does not starve a small exchange on the same loop: the
// byte budget hands the loop to other connections.
func TestLoopBulkDoesNotStarveOthers(t *testing.T) {
	for _, s := range loopStrategies(t) {
		t.Run(s.Name(), func(t *testing.T) {
			bulk := takeOver(t, s, context.Background(), PairOptions{TerminationDelay: -1})
			small := takeOver(t, s, context.Background(), PairOptions{TerminationDelay: -1})
			stop := make(chan struct{})
			go func() { _, _ = io.Copy(io.Discard, bulk.backend) }()
			go func() {
				buf := make([]byte, 256<<10)
				for {
					select {
					case <-stop:
						_ = bulk.client.CloseWrite()
						return
					default:
					}
					if _, err := bulk.client.Write(buf); err != nil {
						return
					}
				}
			}()
			for range 20 {
				exchangeLoop(t, small)
			}
			close(stop)
			require.NoError(t, small.client.Close())
			require.NoError(t, small.backend.Close())
			assert.Equal(t, int64(100), small.result(t).Sent)
			require.NoError(t, bulk.backend.Close())
			require.NoError(t, bulk.client.Close())
			bulk.result(t)
		})
	}
}

// When no pipe can be made, loopsplice copies that direction through user
// space, every byte in order, and counts it as splice's fallback is.
func TestLoopSpliceFallsBackVisibly(t *testing.T) {
	loopPipe = func() (*pipe, error) { return nil, unix.EMFILE }
	defer func() { loopPipe = getPipe }()
	s, err := Lookup("loopsplice")
	require.NoError(t, err)
	before := SpliceFallbacks()
	r := takeOver(t, s.(PairStrategy), context.Background(), PairOptions{TerminationDelay: -1})
	data := make([]byte, 4<<20+7)
	for i := range data {
		data[i] = byte(i * 7)
	}
	go func() {
		_, _ = r.client.Write(data)
		_ = r.client.CloseWrite()
	}()
	got, err := io.ReadAll(r.backend)
	require.NoError(t, err)
	assert.Equal(t, len(data), len(got))
	assert.True(t, bytes.Equal(data, got), "every byte, in order")
	assert.Equal(t, int64(1), SpliceFallbacks()-before, "the bulk direction fell back once, counted")
	require.NoError(t, r.backend.Close())
	res := r.result(t)
	assert.Equal(t, int64(len(data)), res.Sent)
}

func openPipes(t *testing.T) int {
	t.Helper()
	n, err := fdlimit.Count("self", "pipe:")
	require.NoError(t, err)
	return n
}

// next finds the earliest non-empty slot as a scan of every slot in turn
// would, wherever the wheel's hand is and however timers come and go.
func TestWheelNextMatchesAScan(t *testing.T) {
	origin := time.Unix(1000, 0)
	scan := func(w *wheel) (time.Time, bool) {
		if w.n == 0 {
			return time.Time{}, false
		}
		for i := int64(1); i <= wheelSlots; i++ {
			if w.slots[(w.cur+i)%wheelSlots] != nil {
				return w.origin.Add(time.Duration(w.cur+i) * wheelTick), true
			}
		}
		return time.Time{}, false
	}
	rng := rand.New(rand.NewPCG(1, 2))
	w := newWheel(origin)
	now := origin
	var pairs []*loopPair
	for step := range 20000 {
		switch r := rng.IntN(10); {
		case r < 5: // schedule a new timer, or move one
			var p *loopPair
			if len(pairs) > 0 && rng.IntN(3) == 0 {
				p = pairs[rng.IntN(len(pairs))]
			} else {
				p = &loopPair{}
				pairs = append(pairs, p)
			}
			w.schedule(p, now.Add(time.Duration(rng.Int64N(int64(3*wheelSlots)))*time.Millisecond/2))
		case r < 7 && len(pairs) > 0: // remove one
			i := rng.IntN(len(pairs))
			w.remove(pairs[i])
			pairs = append(pairs[:i], pairs[i+1:]...)
		default: // time passes
			now = now.Add(time.Duration(rng.Int64N(int64(200 * time.Millisecond))))
			w.advance(now, func(p *loopPair) {
				for i := range pairs {
					if pairs[i] == p {
						pairs = append(pairs[:i], pairs[i+1:]...)
						break
					}
				}
			})
		}
		want, wantOK := scan(&w)
		got, ok := w.next()
		require.Equal(t, wantOK, ok, "step %d", step)
		require.True(t, want.Equal(got), "step %d: next %v, a scan finds %v", step, got, want)
	}
	assert.Equal(t, len(pairs), w.n)
}

// A backend socket the loop connected gets keep-alive keepAliveAfter
// after its connect, from the pair's one timer; that wake-up neither ends
// the pair nor moves the next check of its limit (a sample's interval cut
// short could end a pair whose bytes are still draining).
func TestKeepAliveSharesThePairsTimer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := time.Millisecond
	tests := []struct {
		name     string
		idle     time.Duration   // the pair's idle timeout (0: none)
		firstDue time.Duration   // the timer once connected
		before   []time.Duration // the timer's earlier wake-ups
		wantNext time.Duration   // the timer after keep-alive's (0: stopped)
	}{
		{"no limit: the timer stops", 0, keepAliveAfter, nil, 0},
		{"a later limit keeps its time", 10 * time.Second, keepAliveAfter, nil, 10 * time.Second},
		// The limit's first check at 960 ms starts a sample of 120 ms;
		// keep-alive comes inside it.
		{"a sample's interval is not cut short", 960 * ms, 960 * ms, []time.Duration{960 * ms}, 1080 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fds [2]int
			for i := range fds {
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				require.NoError(t, err)
				t.Cleanup(func() { _ = unix.Close(fd) })
				fds[i] = fd
			}
			keepAlive := func() int {
				v, err := unix.GetsockoptInt(fds[backend1], unix.SOL_SOCKET, unix.SO_KEEPALIVE)
				require.NoError(t, err)
				return v
			}
			e := &engine{wheel: newWheel(t0), now: t0}
			p := &loopPair{e: e, opts: PairOptions{IdleTimeout: tt.idle, TerminationDelay: 5 * time.Second}}
			p.sides[client0].fd, p.sides[backend1].fd = fds[client0], fds[backend1]
			p.active, p.keepAliveAt = t0, t0.Add(keepAliveAfter)
			e.rearm(p)
			next, ok := e.wheel.next()
			require.True(t, ok, "the timer runs for keep-alive")
			assert.Equal(t, t0.Add(tt.firstDue), next, "first due")
			for _, at := range append(tt.before, keepAliveAfter) {
				require.Equal(t, 0, keepAlive(), "keep-alive before %v", at)
				e.now = t0.Add(at)
				e.wheel.advance(e.now, e.fire)
				require.False(t, p.closed, "ended at %v", at)
			}
			assert.Equal(t, 1, keepAlive(), "keep-alive after %v", keepAliveAfter)
			idle, err := unix.GetsockoptInt(fds[backend1], unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
			require.NoError(t, err)
			assert.Equal(t, KeepAliveIdle, idle)
			assert.True(t, p.keepAliveAt.IsZero())
			if tt.wantNext == 0 {
				assert.False(t, p.inWheel, "the timer stopped")
				return
			}
			require.True(t, p.inWheel, "the timer runs for the limit")
			assert.Equal(t, e.wheel.tickOf(t0.Add(tt.wantNext)), p.wtick, "due")
		})
	}
}
