// Command wakecost measures what it costs to wake a thread that waits for
// a socket to become readable, in the three ways this project's designs
// wait: in epoll_wait on a set that holds the socket (nginx, haproxy), in
// epoll_wait on a set that holds a second epoll set that holds the socket
// (an epoll set nested in another), and parked in Go's poller on an epoll
// set that holds the socket (the loop strategies: their set is nested in
// Go's own, and each wake-up then takes a second epoll_wait on it).
//
// Two threads play ping-pong with one byte over a loopback TCP connection:
// the pinger waits directly in epoll_wait; the ponger waits in the way
// under test, reads, and answers. The round trip holds two wake-ups, one
// of them the ponger's, so the difference between two ways is what one
// wake-up of the ponger costs more. Rounds of the three ways are
// interleaved.
//
//	go run ./scripts/wakecost [-rounds 5] [-duration 1s]
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/l4bench/l4bench/bench/stats"
)

// maxTrips bounds each measurement besides its duration.
const maxTrips = 2_000_000

type way struct {
	name string
	wait func(conn int) (ponger, error)
	// lock: the ponger blocks in a raw epoll_wait holding its thread and
	// P, as a C event loop holds its thread; Go's poller needs neither.
	lock bool
}

// ponger waits for the connection to be readable once.
type ponger interface {
	wait() error
	close()
}

func main() {
	rounds := flag.Int("rounds", 5, "interleaved rounds of each way")
	duration := flag.Duration("duration", time.Second, "each measurement")
	flag.Parse()
	runtime.GOMAXPROCS(3) // the pinger and a blocking ponger each hold one

	ways := []way{
		{"epoll_wait on the socket's set", direct, true},
		{"epoll_wait on a set nesting the socket's, then on the socket's", nested, true},
		{"parked in Go's poller on the socket's set, then epoll_wait on it", gopoller, false},
	}
	rtts := make([][]float64, len(ways))
	for range *rounds {
		for i, w := range ways {
			rtt, err := measure(w, *duration)
			check(err)
			rtts[i] = append(rtts[i], rtt)
		}
	}
	fmt.Printf("ping-pong of 1 byte over loopback TCP, %d rounds of %s per way, median round trip (two wake-ups, one of them the ponger's; Mann-Whitney U against the first way)\n\n", *rounds, *duration)
	fmt.Println("| the ponger waits | round trip | 95% CI | against the first |")
	fmt.Println("| --- | ---: | ---: | ---: |")
	base := stats.CI(rtts[0])
	for i, w := range ways {
		iv := stats.CI(rtts[i])
		vs := "-"
		if i > 0 {
			vs = fmt.Sprintf("%+.2f µs, p=%.3f", iv.Center-base.Center, stats.P(rtts[i], rtts[0]))
		}
		fmt.Printf("| %s | %.2f µs | %.2f–%.2f µs | %s |\n", w.name, iv.Center, iv.Lo, iv.Hi, vs)
	}
}

// measure runs one ping-pong for d and returns the mean round trip in µs.
func measure(w way, d time.Duration) (float64, error) {
	a, b, err := pair()
	if err != nil {
		return 0, err
	}
	defer unix.Close(a)
	defer unix.Close(b)
	p, err := w.wait(b)
	if err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() {
		if w.lock {
			runtime.LockOSThread()
		}
		buf := make([]byte, 1)
		for {
			if err := p.wait(); err != nil {
				done <- err
				return
			}
			n, err := unix.Read(b, buf)
			if n == 0 || err != nil {
				done <- nil // the pinger closed its end
				return
			}
			if _, err := unix.Write(b, buf); err != nil {
				done <- err
				return
			}
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return 0, err
	}
	defer unix.Close(ep)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, a, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(a)}); err != nil {
		return 0, err
	}
	buf, evs := []byte{1}, make([]unix.EpollEvent, 1)
	start, trips := time.Now(), 0
	for ; trips < maxTrips && (trips%256 != 0 || time.Since(start) < d); trips++ {
		if _, err := unix.Write(a, buf); err != nil {
			return 0, err
		}
		if err := blockingWait(ep, evs); err != nil {
			return 0, err
		}
		if _, err := unix.Read(a, buf); err != nil {
			return 0, err
		}
	}
	elapsed := time.Since(start)
	_ = unix.Shutdown(a, unix.SHUT_WR)
	if err := <-done; err != nil {
		return 0, err
	}
	p.close()
	return float64(elapsed.Microseconds()) / float64(trips), nil
}

// blockingWait blocks in epoll_wait without entering Go's scheduler, as a
// C event loop does; the caller's thread keeps its P meanwhile.
func blockingWait(ep int, evs []unix.EpollEvent) error {
	for {
		n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), ^uintptr(0), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		if n > 0 {
			return nil
		}
	}
}

// pair is a connected loopback TCP connection's two non-blocking fds.
func pair() (int, int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return -1, -1, err
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return -1, -1, err
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		return -1, -1, err
	}
	defer s.Close()
	a, err := dupFD(c.(*net.TCPConn))
	if err != nil {
		return -1, -1, err
	}
	b, err := dupFD(s.(*net.TCPConn))
	if err != nil {
		unix.Close(a)
		return -1, -1, err
	}
	return a, b, nil
}

// dupFD duplicates a connection's socket as a non-blocking fd of our own
// with TCP_NODELAY, outside Go's poller.
func dupFD(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	return fd, unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
}

// epollOf is an epoll set holding fd, for readability.
func epollOf(fd int) (int, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return -1, err
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
		unix.Close(ep)
		return -1, err
	}
	return ep, nil
}

type directWait struct {
	ep  int
	evs []unix.EpollEvent
}

func direct(conn int) (ponger, error) {
	ep, err := epollOf(conn)
	return &directWait{ep, make([]unix.EpollEvent, 1)}, err
}

func (d *directWait) wait() error { return blockingWait(d.ep, d.evs) }
func (d *directWait) close()      { unix.Close(d.ep) }

type nestedWait struct {
	inner, outer int
	evs          []unix.EpollEvent
}

func nested(conn int) (ponger, error) {
	inner, err := epollOf(conn)
	if err != nil {
		return nil, err
	}
	outer, err := epollOf(inner)
	if err != nil {
		unix.Close(inner)
		return nil, err
	}
	return &nestedWait{inner, outer, make([]unix.EpollEvent, 1)}, nil
}

func (w *nestedWait) wait() error {
	for {
		if err := blockingWait(w.outer, w.evs); err != nil {
			return err
		}
		n, err := unix.EpollWait(w.inner, w.evs, 0)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		if n > 0 {
			return nil
		}
	}
}

func (w *nestedWait) close() { unix.Close(w.outer); unix.Close(w.inner) }

// goWait parks in Go's poller on the epoll set's fd (edge-triggered in
// Go's own set), then takes the set's events without blocking: the loop
// strategies' way (proxy/copy/loop.go, engine.run).
type goWait struct {
	file  *os.File
	inner int
	evs   []unix.EpollEvent
}

func gopoller(conn int) (ponger, error) {
	inner, err := epollOf(conn)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(inner, true); err != nil {
		unix.Close(inner)
		return nil, err
	}
	return &goWait{os.NewFile(uintptr(inner), "epoll"), inner, make([]unix.EpollEvent, 1)}, nil
}

func (w *goWait) wait() error {
	rc, err := w.file.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Read(func(fd uintptr) bool {
		n, err := unix.EpollWait(int(fd), w.evs, 0)
		if err != nil && !errors.Is(err, unix.EINTR) {
			werr = err
			return true
		}
		return n > 0
	})
	if err != nil {
		return err
	}
	return werr
}

func (w *goWait) close() { w.file.Close() }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "wakecost:", err)
		os.Exit(1)
	}
}
