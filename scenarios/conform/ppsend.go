// Group E of the catalogue: sending the PROXY protocol.

package conform

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/pires/go-proxyproto"
)

// ppSeen is what a backend read from a design that sends PROXY headers.
type ppSeen struct {
	raw     []byte // the bytes before the payload
	header  *proxyproto.Header
	payload string
	err     error
}

// ppCase checks the header the design sends, once with client data and
// once with a backend that speaks first and a client that never sends.
func ppCase(ctx context.Context, h *Harness, version int) (Status, string) {
	h.ProxyProtocol = version
	seen := make(chan ppSeen, 2)
	addr, err := h.Start(func(b *net.TCPConn) {
		br := bufio.NewReader(b)
		_ = b.SetReadDeadline(time.Now().Add(2 * time.Second))
		hdr, err := proxyproto.Read(br)
		s := ppSeen{header: hdr, err: err}
		if hdr != nil {
			s.raw, _ = hdr.Format()
		}
		_, _ = b.Write([]byte("banner"))
		buf := make([]byte, 5)
		n, _ := io.ReadFull(br, buf)
		s.payload = string(buf[:n])
		seen <- s
	})
	if err != nil {
		return startStatus(err)
	}
	// The catalogue's clients come from 127.0.0.1 and from ::1.
	for _, family := range []string{"TCP4", "TCP6"} {
		if family == "TCP6" {
			h.IPv6 = true
			if addr, err = h.Restart("ipv6"); err != nil {
				st, obs := startStatus(err)
				return st, "on ::1: " + obs
			}
		}
		if st, obs := ppClients(ctx, addr, seen, version, family); st != Pass {
			return st, obs
		}
	}
	return Pass, ""
}

// ppClients runs the two client behaviours against a design on addr.
func ppClients(ctx context.Context, addr string, seen chan ppSeen, version int, family string) (Status, string) {
	for _, clientSends := range []bool{true, false} {
		c, err := dial(ctx, addr)
		if err != nil {
			return Fail, "connect: " + err.Error()
		}
		if clientSends {
			_, _ = c.Write([]byte("close"))
		}
		var s ppSeen
		select {
		case s = <-seen:
		case <-time.After(4 * time.Second):
			c.Close()
			return Fail, fmt.Sprintf("%s: backend got no PROXY header (client sends data: %v)", family, clientSends)
		}
		banner := make([]byte, 6)
		_, berr := io.ReadFull(c, banner)
		c.Close()
		if s.err != nil {
			return Fail, fmt.Sprintf("backend could not read a PROXY v%d header (client sends data: %v): %v", version, clientSends, s.err)
		}
		if int(s.header.Version) != version {
			return Fail, fmt.Sprintf("got a v%d header, want v%d", s.header.Version, version)
		}
		src, dst, ok := s.header.TCPAddrs()
		if !ok || src.String() != c.LocalAddr().String() || dst.String() != addr {
			return Fail, fmt.Sprintf("header says %v -> %v, the client was %s -> %s", src, dst, c.LocalAddr(), addr)
		}
		if version == 1 {
			want := fmt.Sprintf("PROXY %s %s %s %d %d\r\n", family, src.IP, dst.IP, src.Port, dst.Port)
			if !bytes.Equal(s.raw, []byte(want)) {
				return Fail, fmt.Sprintf("header %q, want %q", s.raw, want)
			}
		}
		if clientSends && s.payload != "close" {
			return Fail, fmt.Sprintf("payload after the header was %q", s.payload)
		}
		if !clientSends && (berr != nil || string(banner) != "banner") {
			return Fail, fmt.Sprintf("banner after a header-only start: %q, %v", banner, berr)
		}
	}
	return Pass, ""
}

func ppSendV1(ctx context.Context, h *Harness) (Status, string) { return ppCase(ctx, h, 1) }

func ppSendV2(ctx context.Context, h *Harness) (Status, string) { return ppCase(ctx, h, 2) }
