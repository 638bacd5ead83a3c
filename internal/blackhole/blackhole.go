// Package blackhole makes the loopback addresses of backends that fail.
// Listen's connects never complete: a listener that never accepts, with
// its accept queue filled, so that the kernel drops further SYNs (the
// catalogue's loopback recipe for a backend that does not answer).
// Refusing's connects are refused at once.
//
//	bh, err := blackhole.Listen()
//	defer bh.Close()
//	net.DialTimeout("tcp", bh.Addr(), time.Second) // times out
package blackhole

import (
	"fmt"
	"net"
	"syscall"
	"time"
)

// Listener is the full listener and the connections that fill its queue.
type Listener struct {
	fd    int
	addr  string
	conns []net.Conn
}

// Listen binds 127.0.0.1:0 with a backlog of 0 and fills the queue.
func Listen() (*Listener, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	l := &Listener{fd: fd}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		l.Close()
		return nil, err
	}
	if err := syscall.Listen(fd, 0); err != nil {
		l.Close()
		return nil, err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		l.Close()
		return nil, err
	}
	l.addr = fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 16 {
		c, err := net.DialTimeout("tcp", l.addr, 300*time.Millisecond)
		if err != nil {
			return l, nil // the queue is full: this SYN was dropped
		}
		l.conns = append(l.conns, c)
	}
	l.Close()
	return nil, fmt.Errorf("a listener with backlog 0 accepted %d connections; cannot make a connect hang here", len(l.conns))
}

// Addr is the address whose connects hang.
func (l *Listener) Addr() string { return l.addr }

// Close releases the queued connections and the listener.
func (l *Listener) Close() {
	for _, c := range l.conns {
		_ = c.Close()
	}
	_ = syscall.Close(l.fd)
}

// Refuser holds a loopback port that is bound and never listens: connects
// to it are refused (the kernel answers the SYN with a reset).
//
// A port noted from a listener and then closed is not enough for a
// "refused backend": while the test runs, the kernel may hand the same
// port to a listener on port 0 (a proxy under test, which then forwards
// every connection to itself until the process runs out of descriptors)
// or to an outgoing connect as its local port (a TCP self-connect, which
// succeeds). A port held by a bound socket without SO_REUSEADDR is given
// to neither.
type Refuser struct {
	fd   int
	addr string
}

// Refusing binds 127.0.0.1:0 without listening and holds it until Close.
func Refusing() (*Refuser, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		_ = syscall.Close(fd)
		return nil, err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		_ = syscall.Close(fd)
		return nil, err
	}
	return &Refuser{fd: fd, addr: fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)}, nil
}

// Addr is the address whose connects are refused.
func (r *Refuser) Addr() string { return r.addr }

// Close releases the port.
func (r *Refuser) Close() { _ = syscall.Close(r.fd) }
