package rawsys

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A connect and an accept made with these calls see the same addresses
// as Go's net package does, on both families.
func TestConnectAcceptAddresses(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "[::1]"} {
		t.Run(host, func(t *testing.T) {
			ln, err := net.Listen("tcp", host+":0")
			if err != nil {
				t.Skipf("no %s here: %v", host, err)
			}
			defer ln.Close()
			target := ln.Addr().(*net.TCPAddr).AddrPort()
			family := unix.AF_INET
			if target.Addr().Is6() {
				family = unix.AF_INET6
			}
			fd, err := Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			require.NoError(t, err)
			defer Close(fd)
			require.NoError(t, SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1))
			v, err := GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
			require.NoError(t, err)
			assert.Equal(t, 1, v)
			if err := Connect(fd, target); err != nil {
				require.ErrorIs(t, err, unix.EINPROGRESS)
			}
			_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(2 * time.Second))
			c, err := ln.Accept()
			require.NoError(t, err)
			defer c.Close()
			local, err := Getsockname(fd)
			require.NoError(t, err)
			assert.Equal(t, c.RemoteAddr().(*net.TCPAddr).AddrPort(), local, "our address as the peer sees it")
			serr, err := GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
			require.NoError(t, err)
			assert.Zero(t, serr)

			// Accept4 on a listener of our own, from a Go client.
			lfd := listenFD(t, family, target.Addr())
			defer Close(lfd)
			bound, err := Getsockname(lfd)
			require.NoError(t, err)
			_, _, err = Accept4(lfd, unix.SOCK_NONBLOCK)
			require.ErrorIs(t, err, unix.EAGAIN, "nothing to accept yet")
			gc, err := net.Dial("tcp", bound.String())
			require.NoError(t, err)
			defer gc.Close()
			var afd int
			var peer netip.AddrPort
			require.Eventually(t, func() bool {
				afd, peer, err = Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
				return err == nil
			}, 2*time.Second, time.Millisecond)
			defer Close(afd)
			assert.Equal(t, gc.LocalAddr().(*net.TCPAddr).AddrPort(), peer)

			// Bytes both ways, and a half-close.
			n, err := Write(afd, []byte("hello"))
			require.NoError(t, err)
			assert.Equal(t, 5, n)
			buf := make([]byte, 5)
			_, err = gc.Read(buf)
			require.NoError(t, err)
			assert.Equal(t, "hello", string(buf))
			require.NoError(t, Shutdown(afd, unix.SHUT_WR))
			_, err = gc.Read(buf)
			assert.Error(t, err, "EOF after the half-close")
		})
	}
}

func listenFD(t *testing.T, family int, addr netip.Addr) int {
	t.Helper()
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	var sa unix.Sockaddr = &unix.SockaddrInet6{Addr: addr.As16()}
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Addr: addr.As4()}
	}
	require.NoError(t, unix.Bind(fd, sa))
	require.NoError(t, unix.Listen(fd, 8))
	return fd
}

func TestErrorsAreErrnos(t *testing.T) {
	tests := []struct {
		name string
		call func() error
	}{
		{"close", func() error { return Close(-1) }},
		{"shutdown", func() error { return Shutdown(-1, unix.SHUT_WR) }},
		{"setsockopt", func() error { return SetsockoptInt(-1, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1) }},
		{"connect", func() error { return Connect(-1, netip.MustParseAddrPort("127.0.0.1:1")) }},
		{"epoll_ctl", func() error { return EpollCtl(-1, unix.EPOLL_CTL_ADD, -1, &unix.EpollEvent{}) }},
		{"read", func() error { _, err := Read(-1, make([]byte, 1)); return err }},
		{"getsockname", func() error { _, err := Getsockname(-1); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, tt.call(), unix.EBADF)
		})
	}
}

// A goroutine waits on an Epoll in Go's poller: woken by its deadline
// with nothing ready, and by an event when one comes.
func TestEpollParksInGosPoller(t *testing.T) {
	ep, err := NewEpoll("test")
	require.NoError(t, err)
	defer ep.File.Close()
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	require.NoError(t, err)
	defer Close(efd)
	require.NoError(t, EpollCtl(ep.FD, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(efd)}))
	events := make([]unix.EpollEvent, 4)
	wait := func() (int, error) {
		n := 0
		err := ep.Conn.Read(func(fd uintptr) bool {
			n, _ = EpollWait(int(fd), events)
			return n > 0
		})
		return n, err
	}

	require.NoError(t, ep.File.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
	_, err = wait()
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "nothing ready: the deadline wakes it")

	require.NoError(t, ep.File.SetReadDeadline(time.Now().Add(2*time.Second)))
	go func() {
		time.Sleep(10 * time.Millisecond)
		_, _ = Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}()
	n, err := wait()
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, int32(efd), events[0].Fd)
}
