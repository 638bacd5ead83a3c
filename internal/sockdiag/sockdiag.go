// Package sockdiag lists the sockets bound to a local port, with their
// inodes, and the timers of established connections, through the
// kernel's sock_diag netlink interface.
//
// It replaces reading /proc/net/tcp, which lists every socket of the host:
// after a tcp-idle round leaves tens of thousands of connections in
// TIME_WAIT, one read of it took 180 ms here, and a design's readiness
// check spent most of a second in it. Asked for listening sockets only,
// the kernel walks its listening table alone.
package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux's inet_diag_req_v2 and inet_diag_msg (linux/inet_diag.h).
type reqV2 struct {
	Family   uint8
	Protocol uint8
	Ext      uint8
	Pad      uint8
	States   uint32
	ID       sockID
}

type sockID struct {
	SPort  [2]byte // big endian
	DPort  [2]byte
	Src    [16]byte
	Dst    [16]byte
	If     uint32
	Cookie [2]uint32
}

type msg struct {
	Family  uint8
	State   uint8
	Timer   uint8
	Retrans uint8
	ID      sockID
	Expires uint32
	RQueue  uint32
	WQueue  uint32
	UID     uint32
	Inode   uint32
}

const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	tcpEstablished   = 1  // TCP_ESTABLISHED
	tcpListen        = 10 // TCP_LISTEN
)

// TimerKeepAlive is the timer of an idle connection with TCP keep-alive
// on (inet_diag's idiag_timer 2; 0 is none, 1 a retransmission).
const TimerKeepAlive = 2

// Bound returns the inodes of the sockets bound to port on either address
// family: for "tcp" those listening, for "udp" all of them.
func Bound(network string, port int) ([]uint32, error) {
	var proto uint8
	var states uint32
	switch network {
	case "tcp":
		proto, states = unix.IPPROTO_TCP, 1<<tcpListen
	case "udp":
		proto, states = unix.IPPROTO_UDP, ^uint32(0)
	default:
		return nil, fmt.Errorf("sockdiag: network %q is neither tcp nor udp", network)
	}
	var out []uint32
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		err := dump(family, proto, states, func(d *msg) {
			if binary.BigEndian.Uint16(d.ID.SPort[:]) == uint16(port) {
				out = append(out, d.Inode)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Timers returns the timer (TimerKeepAlive, ...) of every established TCP
// connection whose local port is local and whose peer's port is remote;
// a port of 0 matches any.
func Timers(local, remote int) ([]uint8, error) {
	var out []uint8
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		err := dump(family, unix.IPPROTO_TCP, 1<<tcpEstablished, func(d *msg) {
			if (local == 0 || binary.BigEndian.Uint16(d.ID.SPort[:]) == uint16(local)) &&
				(remote == 0 || binary.BigEndian.Uint16(d.ID.DPort[:]) == uint16(remote)) {
				out = append(out, d.Timer)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// dump asks for every socket of family and proto in states and hands each
// to keep.
func dump(family, proto uint8, states uint32, keep func(*msg)) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return fmt.Errorf("sockdiag: netlink socket: %w", err)
	}
	defer unix.Close(fd)
	req := reqV2{Family: family, Protocol: proto, States: states}
	hdr := unix.NlMsghdr{
		Len:   uint32(unix.SizeofNlMsghdr + unsafe.Sizeof(req)),
		Type:  sockDiagByFamily,
		Flags: unix.NLM_F_REQUEST | unix.NLM_F_DUMP,
		Seq:   1,
	}
	buf := make([]byte, 0, hdr.Len)
	buf = append(buf, unsafe.Slice((*byte)(unsafe.Pointer(&hdr)), unix.SizeofNlMsghdr)...)
	buf = append(buf, unsafe.Slice((*byte)(unsafe.Pointer(&req)), unsafe.Sizeof(req))...)
	if err := unix.Sendto(fd, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sockdiag: send: %w", err)
	}
	rb := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, rb, 0)
		if err != nil {
			return fmt.Errorf("sockdiag: receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(rb[:n])
		if err != nil {
			return fmt.Errorf("sockdiag: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case syscall.NLMSG_DONE:
				return nil
			case syscall.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
						return fmt.Errorf("sockdiag: %w", unix.Errno(-e))
					}
				}
				return errors.New("sockdiag: error reply")
			}
			if len(m.Data) < int(unsafe.Sizeof(msg{})) {
				continue
			}
			keep((*msg)(unsafe.Pointer(&m.Data[0])))
		}
	}
}
