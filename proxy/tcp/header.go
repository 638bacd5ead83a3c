package tcp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// maxV1 is the longest v1 header the spec allows, CRLF included
// (haproxy's proxy-protocol.txt §2.1: 107 bytes).
const maxV1 = 107

// allowFullV2Headers raises go-proxyproto's limit on a v2 header to what
// the spec allows: 65 535 bytes after the fixed part, where the library
// accepts 4 KiB by default. The limit is the library's global variable,
// with no per-reader option, so it is raised once, by the first Proxy
// that accepts PROXY headers, and never for a program that only imports
// this package. Headers are read only from trusted networks, one per
// connection, and dropped once parsed.
var allowFullV2Headers = sync.OnceFunc(func() { proxyproto.MaxV2HeaderSize = 0xFFFF })

// readProxyHeader checks that the client is trusted and reads its PROXY
// header within the header timeout. It returns the payload bytes that
// arrived with the header; the client conn itself stays unwrapped so the
// data path can still splice.
func (p *Proxy) readProxyHeader(client *net.TCPConn) (*proxyproto.Header, []byte, error) {
	if !p.AcceptProxy.trusts(client.RemoteAddr()) {
		return nil, nil, fmt.Errorf("PROXY header from untrusted address %s", client.RemoteAddr())
	}
	timeout := p.AcceptProxy.headerTimeout()
	_ = client.SetReadDeadline(time.Now().Add(timeout))
	defer func() { _ = client.SetReadDeadline(time.Time{}) }()
	br := bufio.NewReaderSize(client, 512)
	h, err := readHeader(br)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, nil, fmt.Errorf("no complete PROXY header within %s", timeout)
		}
		if errors.Is(err, proxyproto.ErrNoProxyProtocol) {
			return nil, nil, errors.New("no PROXY header (required on this entrypoint)")
		}
		return nil, nil, fmt.Errorf("bad PROXY header: %w", err)
	}
	var rest []byte
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		rest = append([]byte(nil), b...)
	}
	return h, rest, nil
}

// readHeader parses one PROXY header from br with go-proxyproto, adding
// what the spec asks of a receiver that the library leaves out:
//   - a v1 header split over several TCP segments is waited for (the
//     library rejects a v1 line not buffered by one read; the spec
//     recommends tolerating partial headers);
//   - a v2 PROXY command with family UNSPEC is accepted with the real
//     connection's addresses, skipping its length (the library rejects
//     it; §2.2 lets the receiver accept it);
//   - TLVs that overrun the header or leave stray bytes are rejected (the
//     library parses TLVs only when asked).
func readHeader(br *bufio.Reader) (*proxyproto.Header, error) {
	if err := bufferV1Line(br); err != nil {
		return nil, err
	}
	if h, ok, err := proxyUnspec(br); ok || err != nil {
		return h, err
	}
	h, err := proxyproto.Read(br)
	if err != nil {
		return nil, err
	}
	if _, err := h.TLVs(); err != nil {
		return nil, fmt.Errorf("TLVs: %w", err)
	}
	return h, nil
}

// bufferV1Line waits until br holds a whole v1 line (up to its LF), 107
// bytes, or bytes that cannot start a v1 header.
func bufferV1Line(br *bufio.Reader) error {
	for {
		b, err := br.Peek(max(br.Buffered(), 1))
		if err != nil {
			return err
		}
		if !bytes.HasPrefix([]byte("PROXY"), b[:min(len(b), 5)]) {
			return nil // not v1: the library decides
		}
		if len(b) >= maxV1 || bytes.IndexByte(b, '\n') >= 0 {
			return nil
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			return err
		}
	}
}

// proxyUnspec consumes a v2 PROXY header of family UNSPEC and returns it
// as a LOCAL one (use the real addresses).
func proxyUnspec(br *bufio.Reader) (*proxyproto.Header, bool, error) {
	if b, _ := br.Peek(1); len(b) == 0 || b[0] != '\r' {
		return nil, false, nil
	}
	b, err := br.Peek(16)
	if err != nil {
		return nil, false, err
	}
	if !bytes.Equal(b[:12], proxyproto.SIGV2) || b[12] != 0x21 || b[13] != 0x00 {
		return nil, false, nil
	}
	n := 16 + int(binary.BigEndian.Uint16(b[14:16]))
	if _, err := br.Discard(n); err != nil {
		return nil, false, err
	}
	return &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}, true, nil
}
