// Package rawsys makes the socket calls of l4proxy's event loops as raw
// system calls. Each of them returns at once (every descriptor is
// non-blocking, epoll_wait is given a zero timeout), so none needs to tell
// Go's scheduler it is entering a system call. Told, the scheduler's
// monitor hands the caller's P to another thread whenever a call spans
// one of its ticks, and wakes a thread with a futex to run nothing: under
// perf, sysmon's sleeps and hand-offs were the largest single share of a
// tcp-crr run's CPU with these calls made through syscall.Syscall.
//
// Errors are syscall.Errno values, comparable with unix.EAGAIN and the
// like.
package rawsys

import (
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// Close closes fd.
func Close(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	return errnoErr(e)
}

// Shutdown shuts down part of a full-duplex connection.
func Shutdown(fd, how int) error {
	_, _, e := unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), uintptr(how), 0)
	return errnoErr(e)
}

// Socket makes a socket; pass SOCK_NONBLOCK in typ.
func Socket(domain, typ, proto int) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(domain), uintptr(typ), uintptr(proto))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// SetsockoptInt sets an int option.
func SetsockoptInt(fd, level, opt, value int) error {
	v := int32(value)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&v)), 4, 0)
	return errnoErr(e)
}

// GetsockoptInt reads an int option.
func GetsockoptInt(fd, level, opt int) (int, error) {
	var v int32
	n := uint32(4)
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&n)), 0)
	return int(v), errnoErr(e)
}

// sockaddr is an IPv4 or IPv6 socket address in the kernel's layout.
type sockaddr struct {
	any unix.RawSockaddrAny
	len uint32
}

func (sa *sockaddr) set(ap netip.AddrPort) {
	port := ap.Port()
	if a := ap.Addr(); a.Is4() {
		in := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa.any))
		*in = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		p := (*[2]byte)(unsafe.Pointer(&in.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		sa.len = unix.SizeofSockaddrInet4
	} else {
		in := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa.any))
		*in = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
		p := (*[2]byte)(unsafe.Pointer(&in.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		sa.len = unix.SizeofSockaddrInet6
	}
}

// addrPort is the address, an IPv4 address mapped into IPv6 unmapped (as
// net.TCPAddr shows it); the zero AddrPort for another family.
func (sa *sockaddr) addrPort() netip.AddrPort {
	switch sa.any.Addr.Family {
	case unix.AF_INET:
		in := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa.any))
		p := (*[2]byte)(unsafe.Pointer(&in.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(in.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		in := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa.any))
		p := (*[2]byte)(unsafe.Pointer(&in.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(in.Addr).Unmap(), uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}

// Connect starts connecting fd to ap: on a non-blocking socket it returns
// EINPROGRESS when the connect is under way.
func Connect(fd int, ap netip.AddrPort) error {
	var sa sockaddr
	sa.set(ap)
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa.any)), uintptr(sa.len))
	return errnoErr(e)
}

// Accept4 accepts a connection on the listening socket fd and returns its
// descriptor and its peer's address.
func Accept4(fd, flags int) (int, netip.AddrPort, error) {
	var sa sockaddr
	sa.len = unix.SizeofSockaddrAny
	r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&sa.any)), uintptr(unsafe.Pointer(&sa.len)), uintptr(flags), 0, 0)
	if e != 0 {
		return -1, netip.AddrPort{}, e
	}
	return int(r), sa.addrPort(), nil
}

// Getsockname is fd's local address.
func Getsockname(fd int) (netip.AddrPort, error) {
	var sa sockaddr
	sa.len = unix.SizeofSockaddrAny
	_, _, e := unix.RawSyscall(unix.SYS_GETSOCKNAME, uintptr(fd), uintptr(unsafe.Pointer(&sa.any)), uintptr(unsafe.Pointer(&sa.len)))
	if e != 0 {
		return netip.AddrPort{}, e
	}
	return sa.addrPort(), nil
}

// EpollCtl adds, changes or removes fd in the epoll set epfd.
func EpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return errnoErr(e)
}

// EpollWait takes what epfd has ready, without waiting.
func EpollWait(epfd int, events []unix.EpollEvent) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(events))), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// Splice moves up to n bytes from in to out, without blocking.
func Splice(in, out, n int) (int64, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
	if e != 0 {
		return 0, e
	}
	return int64(r), nil
}

// Read reads into b.
func Read(fd int, b []byte) (int, error) { return rw(unix.SYS_READ, fd, b) }

// Write writes b.
func Write(fd int, b []byte) (int, error) { return rw(unix.SYS_WRITE, fd, b) }

func rw(trap uintptr, fd int, b []byte) (int, error) {
	r, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// Epoll is an epoll set of a loop's own, registered with Go's poller: a
// goroutine waits for it to have events with Conn.Read (its callback
// takes them with EpollWait), parked like any goroutine waiting on a
// socket, and the file's read deadline wakes it for timers.
type Epoll struct {
	FD   int
	File *os.File
	Conn syscall.RawConn
}

// NewEpoll makes a non-blocking, close-on-exec epoll set and registers it
// with Go's poller, or says why it cannot be.
func NewEpoll(name string) (*Epoll, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so that os.NewFile registers it with Go's poller.
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err == nil {
		// A file Go's poller cannot wait on has no deadlines: fail here,
		// not with a loop that never wakes.
		err = f.SetReadDeadline(time.Time{})
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("epoll descriptor is not pollable by the Go runtime: %w", err)
	}
	return &Epoll{FD: fd, File: f, Conn: rc}, nil
}
