// Package blackhole makes a loopback address whose connects never
// complete: a listener that never accepts, with its accept queue filled,
// so that the kernel drops further SYNs (the catalogue's loopback recipe
// for a backend that does not answer).
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
