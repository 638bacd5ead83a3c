// Package copy holds the copy strategies: the only code in l4proxy that
// touches payload bytes.
//
// A strategy is one of two kinds. A DirectionStrategy makes one Copier per
// direction of a forwarded connection, and the caller runs each in a
// goroutine of its own:
//
//	s, err := copy.Lookup("splice")
//	c := s.(copy.DirectionStrategy).NewCopier(backend, client, copy.Options{})
//	n, err := c.Copy() // until EOF (err == nil), a closed socket, or an error
//
// The caller (proxy/tcp) calls Copy once per direction and sets no
// deadlines: it judges idleness from the kernel's byte counters and ends a
// connection by closing its sockets, which Copy reports as net.ErrClosed.
// A Copier should still keep no state that a deadline could corrupt.
//
// A PairStrategy takes a connection's two sockets over whole (TakeOver) and
// reports once when the connection has ended: it copies both directions,
// passes half-closes and resets on, and enforces the idle timeout and the
// termination delay itself, with no goroutine of the caller's. The event
// loop engine (loop.go) is one.
//
// Adding a strategy is one file: implement DirectionStrategy or
// PairStrategy (declaring its data path) and call Register from that
// file's init function. The strategy is
// then a --strategy value of l4proxy and an l4proxy-<name> target of
// l4bench, and every test that is about strategies runs it, the strace
// proof of its data path included.
package copy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultBufferSize is the userspace buffer of the buffered, pooled and loop
// strategies when Options.BufferSize is zero: 16 KiB, nginx stream's default
// proxy_buffer_size.
const DefaultBufferSize = 16 << 10

// Options tune a Copier. The zero value is valid.
type Options struct {
	// BufferSize is the userspace buffer size in bytes for strategies that
	// use one. Zero means DefaultBufferSize. Splice ignores it.
	BufferSize int
	// Logger receives a strategy's warnings (splice falling back to user
	// space). Nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) bufferSize() int {
	if o.BufferSize <= 0 {
		return DefaultBufferSize
	}
	return o.BufferSize
}

// The data paths a strategy can declare. l4bench checks the declaration
// under strace: a splice strategy whose bytes go through user space (a
// wrapped conn turns Go's splice off without an error) fails the run.
const (
	DataPathSplice    = "splice"    // through kernel pipes, never through user space
	DataPathUserspace = "userspace" // read into a buffer, written out
)

// Strategy is one way of moving bytes: a DirectionStrategy or a
// PairStrategy.
type Strategy interface {
	// Name is the strategy's name as given to --strategy.
	Name() string
	// DataPath is DataPathSplice or DataPathUserspace.
	DataPath() string
}

// DirectionStrategy creates copiers, one per direction of a connection.
type DirectionStrategy interface {
	Strategy
	// NewCopier prepares the direction src -> dst of one connection.
	NewCopier(dst, src *net.TCPConn, opts Options) Copier
}

// PairStrategy takes over both directions of a connection at once.
type PairStrategy interface {
	Strategy
	// TakeOver owns client and backend from the moment it returns nil:
	// they are closed already (the strategy keeps its own descriptors of
	// the sockets), and done is called once, from the strategy's own
	// goroutine, when the connection has ended. When ctx is done the
	// connection ends at once (EndShutdown). On an error nothing was taken
	// over and both conns are still the caller's.
	TakeOver(ctx context.Context, client, backend *net.TCPConn, opts PairOptions, done func(PairResult)) error
}

// Connector is a PairStrategy that can also serve a listening socket
// whole: it accepts clients in its own loop, as bare descriptors, and
// connects to their backends itself. No net.Conn on either side, no
// goroutine per connection or waiting in accept, no blocking dial.
// proxy/tcp uses it when it has nothing to do in Go between accept and the
// first byte (no PROXY header to read, backends given as IP addresses).
type Connector interface {
	PairStrategy
	// Listen starts accepting on l.Conn's socket, which stays the
	// caller's: it is never closed here, but it gets the socket options
	// its clients are to have (they inherit them). Accepting goes on
	// until the Listening is closed or accept fails for a reason that does
	// not pass. Closing the socket may go unseen by the strategy (the
	// kernel drops it from epoll sets without an event): close the
	// Listening as well.
	Listen(l Listener) (Listening, error)
}

// Listener is a listening socket for a Connector, and what to do with its
// clients.
type Listener struct {
	// Conn is the listening socket's.
	Conn syscall.RawConn
	// Admit is called from the strategy's goroutine for each accepted
	// client (fd non-blocking and close-on-exec, client its peer). It
	// either refuses the client, closing fd itself, and returns false, or
	// returns the client's connection, which the strategy owns from then
	// on.
	Admit func(fd int, client netip.AddrPort) (Client, bool)
	// Ctx, when done, ends every connection of this listener still open
	// at once (EndShutdown), whether or not the Listening was closed.
	// Nil means never.
	Ctx context.Context
	// Backoff is called, from the strategy's goroutine, when accept fails
	// for a reason that passes (out of file descriptors or memory): the
	// strategy stops accepting on this socket for wait, doubling the wait
	// from 5 ms to 1 s while the failures go on.
	Backoff func(err error, wait time.Duration)
}

// Client is an accepted connection, as a Connector serves it. The
// strategy asks Next for a target and connects to it; after a failed
// connect it calls Next again with the failure, until Next reports none
// (the connection then ends with EndUnavailable and the last failure as
// Err). Next and Done are called from the strategy's own goroutine; Done
// once, when the connection has ended.
type Client struct {
	Next func(failed error) (Target, bool)
	Done func(PairResult)
}

// Listening is a Listener being served.
type Listening interface {
	// Close stops accepting: once it has returned, no accept is under
	// way and none starts, so a client that arrives later stays in the
	// socket's backlog (a client accepted just before may still reach
	// Admit after it). Connections already accepted go on.
	Close() error
	// Done is closed once accepting has stopped: by Close, or by a failure
	// of accept that does not pass, which Err then returns.
	Done() <-chan struct{}
	Err() error
}

// Target is one backend for a Connector to connect to.
type Target struct {
	Addr netip.AddrPort
	// ConnectTimeout bounds the connect. Zero means none.
	ConnectTimeout time.Duration
	// Preamble is written to the backend before any byte of the client's
	// (a PROXY header); it is not counted in PairResult.Sent.
	Preamble []byte
	// Options tune the connection once connected.
	Options PairOptions
}

// PairOptions tune a taken-over connection.
type PairOptions struct {
	Options
	// IdleTimeout ends a connection on which no byte moved either way for
	// this long. Zero means never.
	IdleTimeout time.Duration
	// TerminationDelay is how long the remaining direction may stay idle
	// once the other one finished (EOF). Negative means forever.
	TerminationDelay time.Duration
}

// PairResult is how a taken-over connection ended.
type PairResult struct {
	// Sent and Received are the bytes written to the backend and to the
	// client.
	Sent, Received int64
	// End is one of the End constants.
	End string
	// Err is the error that ended it (End == EndReset or EndUnavailable);
	// ErrCut when a limit ended it with bytes still on their way; else nil.
	Err error
}

// ErrCut is PairResult.Err of a connection that a limit (the termination
// delay, the idle timeout, the shutdown grace) ended while bytes were
// still on their way through the proxy: they were dropped, and the side
// they were going to was reset (see Unsent).
var ErrCut = errors.New("ended with bytes still on their way; they were dropped and their destination reset")

// How a connection ended, in proxy/tcp's log line and in PairResult.
const (
	EndDone        = "done"              // both sides finished with FIN
	EndTermination = "termination-delay" // one side finished, the other went idle
	EndIdle        = "idle-timeout"
	EndReset       = "error"
	EndShutdown    = "shutdown"
	// EndUnavailable: a Connector found no backend to connect to.
	EndUnavailable = "backend-unavailable"
)

// Copier moves bytes in one direction.
type Copier interface {
	// Copy moves bytes from src to dst until src reaches EOF, which returns
	// a nil error, or until an error (including a read deadline). It returns
	// the bytes written to dst by this call.
	Copy() (written int64, err error)
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Strategy{}
)

// Register makes a strategy available by its name. It panics on a
// duplicate name, or on a strategy of neither kind, as those are
// programming errors.
func Register(s Strategy) {
	_, direction := s.(DirectionStrategy)
	_, pair := s.(PairStrategy)
	if direction == pair {
		panic("copy: a strategy is a DirectionStrategy or a PairStrategy: " + s.Name())
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[s.Name()]; dup {
		panic("copy: strategy registered twice: " + s.Name())
	}
	registry[s.Name()] = s
}

// Lookup returns the named strategy, or an error that lists the choices.
func Lookup(name string) (Strategy, error) {
	registryMu.RLock()
	s, ok := registry[name]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown strategy %q (choices: %s)", name, strings.Join(Names(), ", "))
	}
	return s, nil
}

// Names lists the registered strategies, splice first, then alphabetically.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == "splice") != (names[j] == "splice") {
			return names[i] == "splice"
		}
		return names[i] < names[j]
	})
	return names
}

// readWriteLoop is the userspace copy loop shared by strategies that own
// their buffer (and by splice when no pipe can be made). It lives here,
// not in a strategy's file, so that a strategy file can be copied whole. It returns nil at EOF.
func readWriteLoop(dst io.Writer, src io.Reader, buf []byte) (written int64, err error) {
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			written += int64(w)
			if werr != nil {
				return written, werr
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}
