// Group F of the catalogue: receiving the PROXY protocol.

package conform

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
)

// ppIn is one thing a client sends to a design that requires PROXY.
type ppIn struct {
	name    string
	chunks  [][]byte // written 20 ms apart; the payload follows the last
	payload string
	accept  bool // the spec says: accept and forward the payload
	// src and dst are the addresses a re-sent header must carry:
	// "" not checked, "peer" the client's own socket addresses.
	src, dst string
	close    bool // the client closes right after writing (rejects only)
	// strict rejects must close the client within 1 s, not at the header
	// timeout.
	quick bool
	// divergence: a wrong verdict is recorded (lenient), not failed.
	divergence bool
}

// seenPP is what the backend got over one connection.
type seenPP struct {
	header  *proxyproto.Header
	err     error
	payload []byte
}

// ppRecvHarness starts a design requiring PROXY headers in front of a
// backend that reads the re-sent header, writes a banner and reads the
// payload to EOF.
func ppRecvHarness(h *Harness) (string, chan seenPP, error) {
	h.AcceptProxy, h.ResendProxy, h.HeaderTimeout = true, true, HeaderTimeout
	seen := make(chan seenPP, 16)
	addr, err := h.Start(func(b *net.TCPConn) {
		_ = b.SetDeadline(time.Now().Add(6 * time.Second))
		br := bufio.NewReader(b)
		hdr, err := proxyproto.Read(br)
		_, _ = b.Write([]byte("banner"))
		p, _ := io.ReadAll(br)
		seen <- seenPP{header: hdr, err: err, payload: p}
	})
	return addr, seen, err
}

// ppRecv runs inputs one after another against one design.
func ppRecv(ctx context.Context, h *Harness, ins []ppIn) (Status, string) {
	addr, seen, err := ppRecvHarness(h)
	if err != nil {
		return startStatus(err)
	}
	status, notes := Pass, []string{}
	for _, in := range ins {
		st, obs := ppOne(ctx, addr, seen, in)
		if st == Fail && in.divergence {
			st = Lenient
		}
		if st != Pass {
			notes = append(notes, in.name+": "+obs)
		} else if obs != "" {
			notes = append(notes, in.name+": "+obs) // e.g. TLVs kept or not
		}
		status = worse(status, st)
	}
	return status, strings.Join(notes, "; ")
}

func ppOne(ctx context.Context, addr string, seen chan seenPP, in ppIn) (Status, string) {
	for len(seen) > 0 { // a late report from an earlier input
		<-seen
	}
	c, err := dial(ctx, addr)
	if err != nil {
		return Fail, "connect: " + err.Error()
	}
	defer c.Close()
	_ = c.SetNoDelay(true)
	for i, chunk := range in.chunks {
		if i > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		if i == len(in.chunks)-1 {
			chunk = append(append([]byte(nil), chunk...), in.payload...)
		}
		if _, err := c.Write(chunk); err != nil {
			if in.accept {
				return Fail, "write: " + err.Error()
			}
			break
		}
	}
	if in.close {
		_ = c.Close()
	}
	if !in.accept {
		return ppRejected(c, seen, in)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	banner := make([]byte, 6)
	if _, err := io.ReadFull(c, banner); err != nil {
		return Fail, fmt.Sprintf("rejected a valid header (client read: %v)", errEnd(err))
	}
	_ = c.CloseWrite()
	var s seenPP
	select {
	case s = <-seen:
	case <-time.After(3 * time.Second):
		return Fail, "backend saw no end of the payload within 3 s"
	}
	if string(s.payload) != in.payload {
		return Fail, fmt.Sprintf("backend got payload %q, want %q", clip(s.payload), in.payload)
	}
	if s.err != nil || s.header == nil {
		return Fail, fmt.Sprintf("re-sent PROXY header unreadable: %v", s.err)
	}
	return checkResent(s.header, c, addr, in)
}

// ppRejected checks that the design closed the client without forwarding
// a byte of what it sent or connecting it to the backend.
func ppRejected(c *net.TCPConn, seen chan seenPP, in ppIn) (Status, string) {
	status, obs := Pass, ""
	connected := false
	if !in.close {
		start := time.Now()
		_ = c.SetReadDeadline(start.Add(HeaderTimeout + time.Second))
		n, err := c.Read(make([]byte, 16))
		took := time.Since(start).Round(time.Millisecond)
		switch {
		case n > 0:
			connected = true
		case errors.Is(err, os.ErrDeadlineExceeded):
			status, obs = Fail, fmt.Sprintf("client still connected %s after the bad header", took)
		case in.quick && took > time.Second:
			status, obs = Lenient, fmt.Sprintf("closed only after %s (the header timeout), not when the 107-byte limit passed", took)
		}
		_ = c.Close()
	}
	wait := 300 * time.Millisecond
	if connected || status == Fail {
		wait = 2 * time.Second // the backend reports once the client is gone
	}
	select {
	case s := <-seen:
		if len(s.payload) > 0 {
			return Fail, fmt.Sprintf("accepted: backend got %q", clip(s.payload))
		}
		if connected {
			return Fail, "accepted: the design connected the client to the backend"
		}
	case <-time.After(wait):
		if connected {
			return Fail, "accepted: the client got the backend's banner"
		}
	}
	return status, obs
}

// checkResent compares the header the design re-sent with what the
// client claimed.
func checkResent(hdr *proxyproto.Header, c *net.TCPConn, addr string, in ppIn) (Status, string) {
	wantSrc, wantDst := in.src, in.dst
	if wantSrc == "peer" {
		wantSrc, wantDst = c.LocalAddr().String(), addr
	}
	tlvs, _ := hdr.TLVs()
	kept := ""
	if hdr.Version == 2 {
		kept = fmt.Sprintf("re-sent v2 header carries %d TLVs", len(tlvs))
	}
	if wantSrc == "" {
		return Pass, kept
	}
	src, dst, ok := hdr.TCPAddrs()
	if !ok {
		return Lenient, fmt.Sprintf("accepted, but the re-sent header carries no address (command 0x%02x, family 0x%02x), not the client's", byte(hdr.Command), byte(hdr.TransportProtocol))
	}
	if !sameAddr(src.String(), wantSrc) {
		return Fail, fmt.Sprintf("re-sent header says source %s, want %s", src, wantSrc)
	}
	if !sameAddr(dst.String(), wantDst) {
		return Lenient, fmt.Sprintf("re-sent header's destination is %s (the design's own), not %s", dst, wantDst)
	}
	return Pass, kept
}

func sameAddr(a, b string) bool {
	x, err1 := netip.ParseAddrPort(a)
	y, err2 := netip.ParseAddrPort(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return x.Addr().Unmap() == y.Addr().Unmap() && x.Port() == y.Port()
}

func clip(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%q… (%d bytes)", b[:40], len(b))
	}
	return string(b)
}

// v1 is a one-chunk v1 header.
func v1(line string) [][]byte { return [][]byte{[]byte(line)} }

// v2 builds a v2 header: signature, ver_cmd, fam, length, body.
func v2(verCmd, fam byte, body []byte) []byte {
	b := append([]byte(nil), proxyproto.SIGV2...)
	b = append(b, verCmd, fam)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

// v2len is v2 with a length field that disagrees with the body.
func v2len(verCmd, fam byte, length int, body []byte) []byte {
	b := v2(verCmd, fam, body)
	binary.BigEndian.PutUint16(b[14:], uint16(length))
	return b
}

// inet is the address block of a v2 header.
func inet(src, dst string) []byte {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	b := append(s.Addr().AsSlice(), d.Addr().AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, s.Port())
	return binary.BigEndian.AppendUint16(b, d.Port())
}

func tlv(typ byte, value []byte) []byte {
	b := []byte{typ}
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	return append(b, value...)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// withCRC fills the CRC32C TLV's value (the last 4 bytes of the header
// at off) as the spec says: over the whole header with the field zeroed.
func withCRC(hdr []byte, off int) []byte {
	sum := crc32.Checksum(hdr, crc32.MakeTable(crc32.Castagnoli))
	binary.BigEndian.PutUint32(hdr[off:], sum)
	return hdr
}

// chunks splits b into pieces of the given sizes (the last size repeats).
func chunks(b []byte, sizes ...int) [][]byte {
	var out [][]byte
	for i := 0; len(b) > 0; i++ {
		n := min(sizes[min(i, len(sizes)-1)], len(b))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

const (
	cmdProxy = 0x21
	cmdLocal = 0x20
	tcp4     = 0x11
	tcp6     = 0x21
)

var (
	doc4    = inet("192.0.2.1:123", "192.0.2.2:5678")
	doc6    = inet("[2001:db8::1]:123", "[2001:db8::2]:5678")
	valid4  = ppIn{src: "192.0.2.1:123", dst: "192.0.2.2:5678"}
	valid6  = ppIn{src: "[2001:db8::1]:123", dst: "[2001:db8::2]:5678"}
	longV1  = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
	v1Good4 = "PROXY TCP4 192.0.2.1 192.0.2.2 123 5678"
)

func accepted(base ppIn, name string, chunks [][]byte) ppIn {
	base.name, base.chunks, base.accept, base.payload = name, chunks, true, "payload-"+name
	return base
}

func rejected(name string, chunks [][]byte) ppIn {
	return ppIn{name: name, chunks: chunks, payload: "payload-" + name}
}

func ppRecvV1Valid(ctx context.Context, h *Harness) (Status, string) {
	return ppRecv(ctx, h, []ppIn{
		accepted(valid4, "tcp4", v1(v1Good4+"\r\n")),
		accepted(valid6, "tcp6", v1("PROXY TCP6 2001:db8::1 2001:db8::2 123 5678\r\n")),
	})
}

func ppRecvV1Unknown(ctx context.Context, h *Harness) (Status, string) {
	peer := ppIn{src: "peer"}
	return ppRecv(ctx, h, []ppIn{
		accepted(peer, "bare", v1("PROXY UNKNOWN\r\n")),
		accepted(peer, "with-addresses", v1("PROXY UNKNOWN 1 2 3 4 5 6\r\n")),
	})
}

func ppRecvV1LengthLimit(ctx context.Context, h *Harness) (Status, string) {
	long := rejected("no-crlf-after-107", v1(v1Good4+strings.Repeat(" ", 256)))
	long.quick = true
	return ppRecv(ctx, h, []ppIn{
		accepted(ppIn{src: "peer"}, "107-bytes", v1(longV1)),
		long,
	})
}

func ppRecvV1Malformed(ctx context.Context, h *Harness) (Status, string) {
	var ins []ppIn
	for _, m := range []struct{ name, line string }{
		{"bare-lf", v1Good4 + "\n"},
		{"empty", "PROXY \r\n"},
		{"unknown-protocol", "PROXY SOMETHING\r\n"},
		{"no-space", "PROXYTCP4 192.0.2.1 192.0.2.2 123 5678\r\n"},
		{"octet-leading-zero", "PROXY TCP4 01.2.3.4 192.0.2.2 123 5678\r\n"},
		{"port-leading-zero", "PROXY TCP4 192.0.2.1 192.0.2.2 080 5678\r\n"},
		{"port-plus", "PROXY TCP4 192.0.2.1 192.0.2.2 +80 5678\r\n"},
		{"port-65536", "PROXY TCP4 192.0.2.1 192.0.2.2 65536 5678\r\n"},
		{"tcp4-with-ipv6", "PROXY TCP4 2001:db8::1 2001:db8::2 123 5678\r\n"},
		{"extra-token", v1Good4 + " extra\r\n"},
		{"zone", "PROXY TCP6 fe80::1%eth0 2001:db8::2 123 5678\r\n"},
	} {
		ins = append(ins, rejected(m.name, v1(m.line)))
	}
	return ppRecv(ctx, h, ins)
}

func ppRecvV2Valid(ctx context.Context, h *Harness) (Status, string) {
	return ppRecv(ctx, h, []ppIn{
		accepted(valid4, "tcp4", [][]byte{v2(cmdProxy, tcp4, doc4)}),
		accepted(valid6, "tcp6", [][]byte{v2(cmdProxy, tcp6, doc6)}),
	})
}

func ppRecvV2Local(ctx context.Context, h *Harness) (Status, string) {
	peer := ppIn{src: "peer"}
	return ppRecv(ctx, h, []ppIn{
		accepted(peer, "local-len0", [][]byte{v2(cmdLocal, 0x00, nil)}),
		accepted(peer, "local-tlv", [][]byte{v2(cmdLocal, 0x00, tlv(0x04, []byte{0}))}),
	})
}

func ppRecvV2FamilyEdge(ctx context.Context, h *Harness) (Status, string) {
	peer := ppIn{src: "peer", divergence: true}
	unix := make([]byte, 216)
	copy(unix, "/tmp/client.sock")
	copy(unix[108:], "/tmp/server.sock")
	c := rejected("inet-undefined-transport-0x13", [][]byte{v2(cmdProxy, 0x13, doc4)})
	c.divergence = true
	d := rejected("undefined-family-0x41", [][]byte{v2(cmdProxy, 0x41, doc4)})
	d.divergence = true
	return ppRecv(ctx, h, []ppIn{
		accepted(peer, "proxy-unspec-len0", [][]byte{v2(cmdProxy, 0x00, nil)}),
		accepted(peer, "af-unix-len216", [][]byte{v2(cmdProxy, 0x31, unix)}),
		d, c,
	})
}

func ppRecvV2TLVs(ctx context.Context, h *Harness) (Status, string) {
	custom := make([]byte, 128)
	for i := range custom {
		custom[i] = byte(i)
	}
	ssl := cat([]byte{0x07}, []byte{0, 0, 0, 0}, tlv(0x21, []byte("TLSv1.3")), tlv(0x22, []byte("client.example")))
	body := cat(doc4,
		tlv(0x01, []byte("h2")),
		tlv(0x02, []byte("example.com")),
		tlv(0x04, []byte{0, 0}),
		tlv(0x05, []byte("unique-id-42")),
		tlv(0x20, ssl),
		tlv(0x30, []byte("ns1")),
		tlv(0xE0, custom),
		tlv(0xE1, nil),
		tlv(0x03, []byte{0, 0, 0, 0}),
	)
	hdr := withCRC(v2(cmdProxy, tcp4, body), 16+len(body)-4)
	big := v2(cmdProxy, tcp4, cat(doc4, tlv(0xE2, make([]byte, 0xFFFF-12-3))))
	return ppRecv(ctx, h, []ppIn{
		accepted(valid4, "all-kinds", [][]byte{hdr}),
		accepted(valid4, "len-0xffff", [][]byte{big}),
	})
}

func ppRecvV2LengthMismatch(ctx context.Context, h *Harness) (Status, string) {
	lookalike := accepted(valid4, "payload-looks-like-tlv", [][]byte{v2(cmdProxy, tcp4, doc4)})
	lookalike.payload = string(tlv(0x04, []byte{0, 0})) + "after"
	return ppRecv(ctx, h, []ppIn{
		rejected("tcp4-len11", [][]byte{v2len(cmdProxy, tcp4, 11, doc4[:11])}),
		rejected("tcp6-len20", [][]byte{v2len(cmdProxy, tcp6, 20, doc6[:20])}),
		rejected("tcp6-len35", [][]byte{v2len(cmdProxy, tcp6, 35, doc6[:35])}),
		rejected("tlv-overruns", [][]byte{v2(cmdProxy, tcp4, cat(doc4, []byte{0xE0, 0, 10}, make([]byte, 8)))}),
		rejected("one-stray-byte", [][]byte{v2(cmdProxy, tcp4, cat(doc4, tlv(0x04, []byte{0}), []byte{0xE0}))}),
		lookalike,
	})
}

func ppRecvV2BadVersionCommand(ctx context.Context, h *Harness) (Status, string) {
	var ins []ppIn
	for _, vc := range []byte{0x11, 0x31, 0x23, 0x29} {
		ins = append(ins, rejected(fmt.Sprintf("ver_cmd-0x%02x", vc), [][]byte{v2(vc, tcp4, doc4)}))
	}
	return ppRecv(ctx, h, ins)
}

func ppRecvBadSignature(ctx context.Context, h *Harness) (Status, string) {
	h.RequireProxy = true // "PROXY required" in the catalogue
	truncated := rejected("truncated-v2-signature", [][]byte{proxyproto.SIGV2[:7]})
	truncated.close = true
	prox := rejected("PROX", v1("PROX"))
	prox.close = true
	random := []byte{0x8f, 0x3a, 0x51, 0xc2, 0x07, 0xee, 0x19, 0x64, 0xd0, 0x2b, 0x9e, 0x45}
	sigOnly := rejected("v2-signature-alone", [][]byte{proxyproto.SIGV2})
	sigOnly.payload = ""
	return ppRecv(ctx, h, []ppIn{
		rejected("http-request", v1("GET / HTTP/1.0\r\n\r\n")),
		rejected("random-12-bytes", [][]byte{random}),
		truncated, prox, sigOnly,
	})
}

func ppRecvSplitHeader(ctx context.Context, h *Harness) (Status, string) {
	hdr37 := v2(cmdProxy, tcp4, cat(doc4, tlv(0x04, make([]byte, 6))))
	twoTLVs := v2(cmdProxy, tcp4, cat(doc4, tlv(0x04, []byte{0}), tlv(0xE0, []byte("abc"))))
	split := func(name string, c [][]byte) ppIn {
		in := accepted(valid4, name, c)
		in.divergence = true // a strict receiver may reject; misparsing is caught by the payload and address checks
		return in
	}
	return ppRecv(ctx, h, []ppIn{
		split("v1-10-byte-chunks", chunks([]byte(v1Good4+"\r\n"), 10)),
		split("v2-10/10/17", chunks(hdr37, 10, 10, 17)),
		split("v2-16/10/11", chunks(hdr37, 16, 10, 11)),
		split("v2-17/10/10", chunks(hdr37, 17, 10, 10)),
		split("v2-9-byte-chunks", chunks(hdr37, 9)),
		split("v2-3-byte-chunks", chunks(hdr37, 3)),
		split("v2-tlvs-apart", [][]byte{twoTLVs[:28], twoTLVs[28:32], twoTLVs[32:]}),
	})
}

// ppRecvHeaderTimeout stalls two clients mid-header at once and waits
// for the design to close both within its header timeout.
func ppRecvHeaderTimeout(ctx context.Context, h *Harness) (Status, string) {
	addr, seen, err := ppRecvHarness(h)
	if err != nil {
		return startStatus(err)
	}
	base := h.FDs()
	partial := map[string][]byte{"v1-partial": []byte("PROXY TCP4 1.2."), "v2-first-10-bytes": v2(cmdProxy, tcp4, doc4)[:10]}
	var mu sync.Mutex
	status, notes := Pass, []string{}
	var wg sync.WaitGroup
	for name, b := range partial {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, obs := Pass, ""
			c, err := dial(ctx, addr)
			if err != nil {
				st, obs = Fail, "connect: "+err.Error()
			} else {
				defer c.Close()
				_, _ = c.Write(b)
				end, took := endOf(c, HeaderTimeout+time.Second)
				// Closing at once is within the timeout too: a receiver may
				// drop a partial header (spec §2), as go-proxyproto does.
				if end == "open" {
					st, obs = Fail, fmt.Sprintf("still connected %s after a stalled header (header timeout %s)", took.Round(time.Millisecond), HeaderTimeout)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if st != Pass {
				notes = append(notes, name+": "+obs)
			}
			status = worse(status, st)
		}()
	}
	wg.Wait()
	select {
	case s := <-seen:
		if len(s.payload) > 0 || s.err == nil {
			status = worse(status, Fail)
			notes = append(notes, "the backend got a connection with a header from a stalled client")
		}
	default:
	}
	if n, ok := fdsBackTo(h, base, time.Second); !ok {
		status = worse(status, Fail)
		notes = append(notes, fmt.Sprintf("%d sockets open after both clients were closed, %d before", n, base))
	}
	return status, strings.Join(notes, "; ")
}

// ppRecvHeaderOnly sends a complete header and nothing else; the backend
// speaks first and its banner must reach the client.
func ppRecvHeaderOnly(ctx context.Context, h *Harness) (Status, string) {
	in1 := accepted(valid4, "v1-header-only", v1(v1Good4+"\r\n"))
	in2 := accepted(valid4, "v2-header-only", [][]byte{v2(cmdProxy, tcp4, doc4)})
	in1.payload, in2.payload = "", ""
	return ppRecv(ctx, h, []ppIn{in1, in2})
}
