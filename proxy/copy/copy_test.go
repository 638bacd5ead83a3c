package copy_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The copier conformance test: what every registered strategy must do,
// whatever its data path. A strategy added in a file of its own is run
// here with no edit.

// tcpPair returns two ends of one loopback TCP connection.
func tcpPair(t *testing.T) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	a, err = net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	require.NoError(t, err)
	b = <-accepted
	require.NotNil(t, b)
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a, b
}

// relay is a client and a backend with one strategy between them, as
// proxy/tcp runs it: one Copier per direction, and a direction that ends
// at EOF passes the half-close on.
type relay struct {
	client, backend  *net.TCPConn // the test's ends
	front, back      *net.TCPConn // the proxy's ends
	up, down         copystrat.Copier
	upDone, downDone chan result // each receives its direction's one result
	upRes, downRes   *result
}

type result struct {
	n   int64
	err error
}

func newRelay(t *testing.T, s copystrat.DirectionStrategy) *relay {
	r := &relay{upDone: make(chan result, 1), downDone: make(chan result, 1)}
	r.client, r.front = tcpPair(t)
	r.back, r.backend = tcpPair(t)
	r.up = s.NewCopier(r.back, r.front, copystrat.Options{})
	r.down = s.NewCopier(r.front, r.back, copystrat.Options{})
	return r
}

func (r *relay) start() {
	run := func(c copystrat.Copier, dst *net.TCPConn, done chan result) {
		n, err := c.Copy()
		if err == nil {
			_ = dst.CloseWrite()
		}
		done <- result{n, err}
	}
	go run(r.up, r.back, r.upDone)
	go run(r.down, r.front, r.downDone)
}

// waitUp and waitDown return a direction's result once its Copy returned.
func (r *relay) waitUp(t *testing.T) result   { return r.wait(t, r.upDone, &r.upRes, "up") }
func (r *relay) waitDown(t *testing.T) result { return r.wait(t, r.downDone, &r.downRes, "down") }

func (r *relay) wait(t *testing.T, done chan result, got **result, what string) result {
	t.Helper()
	if *got == nil {
		res := wait(t, done, what)
		*got = &res
	}
	return **got
}

// stop closes the proxy's ends and waits for both directions.
func (r *relay) stop(t *testing.T) {
	_ = r.front.Close()
	_ = r.back.Close()
	r.waitUp(t)
	r.waitDown(t)
}

func wait(t *testing.T, done chan result, what string) result {
	t.Helper()
	select {
	case res := <-done:
		return res
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Copy did not return", what)
		return result{}
	}
}

// strategies are the registered strategies that make a Copier per
// direction; PairStrategies are tested whole in loop_test.go and by
// proxy/tcp.
func strategies(t *testing.T) []copystrat.DirectionStrategy {
	var out []copystrat.DirectionStrategy
	for _, name := range copystrat.Names() {
		s, err := copystrat.Lookup(name)
		require.NoError(t, err)
		if ds, ok := s.(copystrat.DirectionStrategy); ok {
			out = append(out, ds)
		}
	}
	require.NotEmpty(t, out)
	return out
}

// Both directions at once, with odd write sizes, arrive byte-exact, and
// each Copy reports what it moved.
func TestCopierChecksumsBothWays(t *testing.T) {
	for _, s := range strategies(t) {
		t.Run(s.Name(), func(t *testing.T) {
			r := newRelay(t, s)
			r.start()
			const size = 8<<20 + 4093
			upData, downData := random(size, 1), random(size, 2)
			upSent, downSent := send(r.client, upData, 3), send(r.backend, downData, 4)
			gotUp, gotDown := readAll(r.backend), readAll(r.client)
			require.NoError(t, <-upSent)
			require.NoError(t, <-downSent)
			up, down := <-gotUp, <-gotDown
			require.NoError(t, up.err)
			require.NoError(t, down.err)
			assert.Equal(t, sha256.Sum256(upData), sha256.Sum256(up.data), "client → backend")
			assert.Equal(t, sha256.Sum256(downData), sha256.Sum256(down.data), "backend → client")
			upRes, downRes := r.waitUp(t), r.waitDown(t)
			require.NoError(t, upRes.err)
			require.NoError(t, downRes.err)
			assert.Equal(t, int64(size), upRes.n, "up's Copy reports every byte")
			assert.Equal(t, int64(size), downRes.n, "down's Copy reports every byte")
			r.stop(t)
		})
	}
}

func random(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// send writes data in odd-sized pieces, then half-closes.
func send(c *net.TCPConn, data []byte, seed uint64) chan error {
	rng := rand.New(rand.NewPCG(seed, seed))
	done := make(chan error, 1)
	go func() {
		for len(data) > 0 {
			n := min(len(data), 1+rng.IntN(70000))
			if _, err := c.Write(data[:n]); err != nil {
				done <- err
				return
			}
			data = data[n:]
		}
		done <- c.CloseWrite()
	}()
	return done
}

type read struct {
	data []byte
	err  error
}

func readAll(c *net.TCPConn) chan read {
	done := make(chan read, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		data, err := io.ReadAll(c)
		done <- read{data, err}
	}()
	return done
}

// A half-close passes through in both orders: the side that finished
// first still gets the other's reply, then EOF.
func TestCopierHalfCloseBothOrders(t *testing.T) {
	for _, s := range strategies(t) {
		for _, clientFirst := range []bool{true, false} {
			name := s.Name() + "/backend first"
			first, second := "backend", "client"
			if clientFirst {
				name, first, second = s.Name()+"/client first", "client", "backend"
			}
			t.Run(name, func(t *testing.T) {
				r := newRelay(t, s)
				r.start()
				a, b := r.backend, r.client
				if clientFirst {
					a, b = r.client, r.backend
				}
				_, err := a.Write([]byte("request from " + first))
				require.NoError(t, err)
				require.NoError(t, a.CloseWrite())
				got := <-readAll(b)
				require.NoError(t, got.err)
				assert.Equal(t, "request from "+first, string(got.data), "then EOF")
				reply := bytes.Repeat([]byte("reply from "+second+" "), 1<<16)
				_, err = b.Write(reply)
				require.NoError(t, err, "the %s can still write after the %s's FIN", second, first)
				require.NoError(t, b.CloseWrite())
				back := <-readAll(a)
				require.NoError(t, back.err)
				assert.Equal(t, len(reply), len(back.data))
				assert.True(t, bytes.Equal(reply, back.data))
				assert.NoError(t, r.waitUp(t).err)
				assert.NoError(t, r.waitDown(t).err)
				r.stop(t)
			})
		}
	}
}

// A reset from the backend ends the direction reading from it with an
// error, not as a clean EOF that would pass a FIN on.
func TestCopierReportsAReset(t *testing.T) {
	for _, s := range strategies(t) {
		t.Run(s.Name(), func(t *testing.T) {
			r := newRelay(t, s)
			r.start()
			_, err := r.backend.Write([]byte("partial"))
			require.NoError(t, err)
			buf := make([]byte, 7)
			_, err = io.ReadFull(r.client, buf)
			require.NoError(t, err)
			require.NoError(t, r.backend.SetLinger(0))
			require.NoError(t, r.backend.Close())
			down := r.waitDown(t)
			assert.Error(t, down.err, "a reset is an error")
			assert.Equal(t, int64(7), down.n)
			r.stop(t)
		})
	}
}

// A read deadline ends a Copy with a timeout; the same Copier then
// resumes and moves every later byte, so a deadline corrupts no state.
func TestCopierResumesAfterADeadline(t *testing.T) {
	for _, s := range strategies(t) {
		t.Run(s.Name(), func(t *testing.T) {
			client, front := tcpPair(t)
			back, backend := tcpPair(t)
			c := s.NewCopier(back, front, copystrat.Options{})
			require.NoError(t, front.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
			n, err := c.Copy()
			assert.True(t, errors.Is(err, os.ErrDeadlineExceeded), "a deadline, got %v", err)
			assert.Zero(t, n)

			require.NoError(t, front.SetReadDeadline(time.Time{}))
			data := random(1<<20+1, 5)
			sent := send(client, data, 6)
			got := readAll(backend)
			done := make(chan result, 1)
			go func() {
				n, err := c.Copy()
				if err == nil {
					_ = back.CloseWrite()
				}
				done <- result{n, err}
			}()
			require.NoError(t, <-sent)
			res := wait(t, done, "the resumed Copy")
			require.NoError(t, res.err)
			assert.Equal(t, int64(len(data)), res.n)
			g := <-got
			require.NoError(t, g.err)
			assert.True(t, bytes.Equal(data, g.data), "every byte after the deadline, in order")
		})
	}
}
