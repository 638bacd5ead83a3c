package conform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/l4bench/l4bench/internal/payload"
)

// Cases are the implemented catalogue rows, in catalogue order.
var Cases = []Case{
	{"tcp-basic-bidir", "A", basicBidir},
	{"tcp-backend-speaks-first", "A", backendSpeaksFirst},
	{"tcp-tiny-transfers", "A", tinyTransfers},
	{"tcp-large-checksum-bidir", "A", largeChecksum},
	{"tcp-small-writes-order", "A", smallWritesOrder},
	{"tcp-client-halfclose", "B", clientHalfClose},
	{"tcp-backend-halfclose", "B", backendHalfClose},
	{"tcp-full-close-teardown", "B", fullCloseTeardown},
	{"tcp-backend-close-flushes", "B", backendCloseFlushes},
	{"tcp-client-close-flushes", "B", clientCloseFlushes},
	{"tcp-backend-rst", "B", backendRST},
	{"tcp-client-rst", "B", clientRST},
	{"tcp-fin-then-rst-no-loss", "B", finThenRSTNoLoss},
	{"tcp-backend-refused", "C", backendRefused},
	{"tcp-backend-connect-timeout", "C", connectTimeout},
	{"tcp-send-before-backend-accepts", "C", sendBeforeAccept},
	{"tcp-client-abort-before-connect", "C", abortBeforeConnect},
	{"tcp-many-concurrent-isolation", "C", manyConcurrent},
	{"tcp-churn-no-leak", "C", churnNoLeak},
	{"tcp-idle-timeout", "C", idleTimeout},
	{"tcp-stalled-reader-after-fin", "C", stalledReader(true)},
	{"tcp-stalled-reader-no-fin", "C", stalledReader(false)},
	{"tcp-large-echo-repeated", "C", largeEchoRepeated},
	{"tcp-shutdown-dial-in-flight", "C", shutdownDialInFlight},
	{"tcp-backpressure-slow-backend", "D", backpressureSlowBackend},
	{"tcp-backpressure-slow-client", "D", backpressureSlowClient},
	{"pp-send-v1", "E", ppSendV1},
	{"pp-send-v2", "E", ppSendV2},
	{"pp-recv-v1-valid", "F", ppRecvV1Valid},
	{"pp-recv-v1-unknown", "F", ppRecvV1Unknown},
	{"pp-recv-v1-length-limit", "F", ppRecvV1LengthLimit},
	{"pp-recv-v1-malformed", "F", ppRecvV1Malformed},
	{"pp-recv-v2-valid", "F", ppRecvV2Valid},
	{"pp-recv-v2-local", "F", ppRecvV2Local},
	{"pp-recv-v2-family-edge", "F", ppRecvV2FamilyEdge},
	{"pp-recv-v2-tlvs", "F", ppRecvV2TLVs},
	{"pp-recv-v2-length-mismatch", "F", ppRecvV2LengthMismatch},
	{"pp-recv-v2-bad-version-command", "F", ppRecvV2BadVersionCommand},
	{"pp-recv-bad-signature", "F", ppRecvBadSignature},
	{"pp-recv-split-header", "F", ppRecvSplitHeader},
	{"pp-recv-header-timeout", "F", ppRecvHeaderTimeout},
	{"pp-recv-header-only-backend-first", "F", ppRecvHeaderOnly},
	{"udp-basic-roundtrip", "G", udpBasic},
	{"udp-datagram-boundaries", "G", udpBoundaries},
	{"udp-zero-length", "G", udpZeroLength},
	{"udp-max-datagram", "G", udpMaxDatagram},
	{"udp-session-per-client", "G", udpSessionPerClient},
	{"udp-replies-routed", "G", udpRepliesRouted},
	{"udp-session-idle-timeout", "G", udpSessionIdleTimeout},
	{"udp-many-clients", "G", udpManyClients},
	{"udp-slow-session-isolation", "G", udpSlowSessionIsolation},
	{"udp-backend-unreachable", "G", udpBackendUnreachable},
	{"udp-reply-source-address", "G", udpReplySource},
}

func dial(ctx context.Context, addr string) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: 3 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return c.(*net.TCPConn), nil
}

// setup starts the backend and design and dials the design.
func setup(ctx context.Context, h *Harness, handle func(*net.TCPConn)) (*net.TCPConn, string, string) {
	addr, err := h.Start(handle)
	if err != nil {
		st, obs := startStatus(err)
		return nil, st, obs
	}
	c, err := dial(ctx, addr)
	if err != nil {
		return nil, Fail, "connect: " + err.Error()
	}
	return c, "", ""
}

func basicBidir(ctx context.Context, h *Harness) (string, string) {
	c, st, obs := setup(ctx, h, func(b *net.TCPConn) {
		buf := make([]byte, 5)
		for range 2 {
			if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "hello" {
				return
			}
			_, _ = b.Write([]byte("world"))
		}
	})
	if c == nil {
		return st, obs
	}
	defer c.Close()
	buf := make([]byte, 5)
	for round := 1; round <= 2; round++ {
		if _, err := c.Write([]byte("hello")); err != nil {
			return Fail, fmt.Sprintf("round %d write: %v", round, err)
		}
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "world" {
			return Fail, fmt.Sprintf("round %d: got %q, %v", round, buf, err)
		}
	}
	return Pass, ""
}

func backendSpeaksFirst(ctx context.Context, h *Harness) (string, string) {
	got := make(chan string, 1)
	c, st, obs := setup(ctx, h, func(b *net.TCPConn) {
		_, _ = b.Write([]byte("220 banner\r\n"))
		buf := make([]byte, 1)
		_, _ = io.ReadFull(b, buf)
		got <- string(buf)
	})
	if c == nil {
		return st, obs
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 12)
	if _, err := io.ReadFull(c, buf); err != nil {
		return Fail, "banner not received within 1 s without sending: " + err.Error()
	}
	_, _ = c.Write([]byte("F"))
	select {
	case s := <-got:
		if s != "F" {
			return Fail, fmt.Sprintf("backend got %q", s)
		}
	case <-time.After(2 * time.Second):
		return Fail, "backend never got the client's byte"
	}
	return Pass, ""
}

func tinyTransfers(ctx context.Context, h *Harness) (string, string) {
	type seen struct {
		data []byte
		err  error
	}
	got := make(chan seen, 1)
	c, st, obs := setup(ctx, h, func(b *net.TCPConn) {
		data, err := io.ReadAll(b)
		got <- seen{data, err}
		_, _ = b.Write([]byte("y"))
		_ = b.CloseWrite()
	})
	if c == nil {
		return st, obs
	}
	defer c.Close()
	_, _ = c.Write([]byte("x"))
	_ = c.CloseWrite()
	reply, err := io.ReadAll(c)
	if err != nil || string(reply) != "y" {
		return Fail, fmt.Sprintf("client got %q then %v, want exactly \"y\" then EOF", reply, err)
	}
	select {
	case s := <-got:
		if s.err != nil || string(s.data) != "x" {
			return Fail, fmt.Sprintf("backend got %q then %v, want exactly \"x\" then EOF", s.data, s.err)
		}
	case <-time.After(3 * time.Second):
		return Fail, "backend never saw the client's FIN"
	}
	return Pass, ""
}

var (
	pattern = payload.Write
	drain   = payload.Drain
)

// largeSize is what crosses each way; the catalogue asks for 256 MiB, 64
// MiB keeps the whole matrix within minutes on 2 cores.
const largeSize = 64 << 20

func largeChecksum(ctx context.Context, h *Harness) (string, string) {
	type res struct {
		n        int64
		got, snt [32]byte
		err      error
	}
	fromClient := make(chan res, 1)
	c, st, obs := setup(ctx, h, func(b *net.TCPConn) {
		sent := make(chan [32]byte, 1)
		go func() { s, _ := pattern(b, 2, largeSize); _ = b.CloseWrite(); sent <- s }()
		n, sum, err := drain(b)
		fromClient <- res{n, sum, <-sent, err}
	})
	if c == nil {
		return st, obs
	}
	defer c.Close()
	sent := make(chan [32]byte, 1)
	go func() { s, _ := pattern(c, 1, largeSize); _ = c.CloseWrite(); sent <- s }()
	n, got, err := drain(c)
	mine := <-sent
	if err != nil {
		return Fail, "client read: " + err.Error()
	}
	var b res
	select {
	case b = <-fromClient:
	case <-time.After(20 * time.Second):
		return Fail, "backend did not finish (deadlock?)"
	}
	switch {
	case n != largeSize || got != b.snt:
		return Fail, fmt.Sprintf("backend to client: %d of %d bytes, checksum match %v", n, largeSize, got == b.snt)
	case b.n != largeSize || b.got != mine:
		return Fail, fmt.Sprintf("client to backend: %d of %d bytes, checksum match %v", b.n, largeSize, b.got == mine)
	}
	return Pass, ""
}

func smallWritesOrder(ctx context.Context, h *Harness) (string, string) {
	c, st, obs := setup(ctx, h, func(b *net.TCPConn) { _, _ = io.Copy(b, b) })
	if c == nil {
		return st, obs
	}
	defer c.Close()
	var want bytes.Buffer
	got := make(chan []byte, 1)
	total := 10000 + 1 + 1023 + 65537
	go func() {
		buf := make([]byte, total)
		n, _ := io.ReadFull(c, buf)
		got <- buf[:n]
	}()
	for i := range 10000 {
		b := []byte{byte(i)}
		want.Write(b)
		if _, err := c.Write(b); err != nil {
			return Fail, "write: " + err.Error()
		}
	}
	for _, size := range []int{1, 1023, 65537} {
		b := bytes.Repeat([]byte{byte(size)}, size)
		want.Write(b)
		_, _ = c.Write(b)
	}
	if g := <-got; !bytes.Equal(g, want.Bytes()) {
		return Fail, fmt.Sprintf("echo differs: %d of %d bytes", len(g), total)
	}
	buf := make([]byte, 4)
	for round := range 100 {
		start := time.Now()
		_, _ = c.Write([]byte("ping"))
		if _, err := io.ReadFull(c, buf); err != nil {
			return Fail, fmt.Sprintf("ping-pong round %d: %v", round, err)
		}
		if d := time.Since(start); d > 50*time.Millisecond {
			return Fail, fmt.Sprintf("ping-pong round %d took %s (small writes held back)", round, d)
		}
	}
	return Pass, ""
}

func clientHalfClose(ctx context.Context, h *Harness) (string, string) {
	got := make(chan string, 1)
	c, st, obs := setup(ctx, h, func(b *net.TCPConn) {
		req, _ := io.ReadAll(b)
		got <- string(req)
		time.Sleep(2 * time.Second)
		_, _ = b.Write(make([]byte, 1<<20))
	})
	if c == nil {
		return st, obs
	}
	defer c.Close()
	_, _ = c.Write([]byte("request"))
	_ = c.CloseWrite()
	n, err := io.Copy(io.Discard, c)
	req := ""
	select {
	case req = <-got:
	default:
	}
	switch {
	case req != "request":
		return Fail, fmt.Sprintf("backend got %q", req)
	case err != nil || n != 1<<20:
		return Fail, fmt.Sprintf("client got %d of %d bytes after its FIN (%v): torn down during the 2 s wait", n, 1<<20, err)
	}
	return Pass, ""
}

func backendHalfClose(ctx context.Context, h *Harness) (string, string) {
	got := make(chan string, 1)
	c, st, obs := setup(ctx, h, func(b *net.TCPConn) {
		_, _ = b.Write([]byte("hello"))
		_ = b.CloseWrite()
		data, _ := io.ReadAll(b)
		got <- string(data)
	})
	if c == nil {
		return st, obs
	}
	defer c.Close()
	hello, err := io.ReadAll(c)
	if err != nil || string(hello) != "hello" {
		return Fail, fmt.Sprintf("client got %q then %v", hello, err)
	}
	_, _ = c.Write([]byte("data"))
	_ = c.CloseWrite()
	select {
	case s := <-got:
		if s != "data" {
			return Fail, fmt.Sprintf("backend got %q after its FIN", s)
		}
	case <-time.After(3 * time.Second):
		return Fail, "backend never got the client's data and FIN"
	}
	return Pass, ""
}

func backendCloseFlushes(ctx context.Context, h *Harness) (string, string) {
	const size = 4 << 20
	var sent [32]byte
	done := make(chan struct{})
	c, st, obs := setup(ctx, h, func(b *net.TCPConn) {
		sent, _ = pattern(b, 3, size)
		close(done)
	}) // returning closes: FIN right after the last byte
	if c == nil {
		return st, obs
	}
	defer c.Close()
	slow := &slowReader{r: c}
	n, got, err := drain(slow)
	<-done
	if err != nil || n != size || got != sent {
		return Fail, fmt.Sprintf("client got %d of %d bytes (checksum match %v, %v)", n, size, got == sent, err)
	}
	return Pass, ""
}

// slowReader reads in 64 KiB steps with a pause, a client slower than
// the backend.
type slowReader struct{ r io.Reader }

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(2 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 64<<10)])
}

// endOf reads until the conn ends and reports how: reset, EOF or timeout.
func endOf(c net.Conn, d time.Duration) (string, time.Duration) {
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(d))
	buf := make([]byte, 64<<10)
	for {
		if _, err := c.Read(buf); err != nil {
			switch {
			case errors.Is(err, syscall.ECONNRESET):
				return "reset", time.Since(start)
			case errors.Is(err, io.EOF):
				return "eof", time.Since(start)
			case errors.Is(err, os.ErrDeadlineExceeded):
				return "open", time.Since(start)
			default:
				return err.Error(), time.Since(start)
			}
		}
	}
}

func rstVerdict(end string, took time.Duration) (string, string) {
	switch end {
	case "reset":
		return Pass, ""
	case "eof":
		return Lenient, fmt.Sprintf("EOF instead of a reset, after %s", took.Round(time.Millisecond))
	case "open":
		return Fail, "connection still open 1 s after the reset"
	default:
		return Fail, end
	}
}

func backendRST(ctx context.Context, h *Harness) (string, string) {
	c, st, obs := setup(ctx, h, func(b *net.TCPConn) {
		_, _ = b.Write(make([]byte, 1000))
		time.Sleep(100 * time.Millisecond)
		_ = b.SetLinger(0)
	})
	if c == nil {
		return st, obs
	}
	defer c.Close()
	return rstVerdict(endOf(c, 1500*time.Millisecond))
}

func clientRST(ctx context.Context, h *Harness) (string, string) {
	type end struct {
		how  string
		took time.Duration
	}
	ended := make(chan end, 1)
	reset := make(chan time.Time, 1)
	c, st, obs := setup(ctx, h, func(b *net.TCPConn) {
		how, _ := endOf(b, 5*time.Second)
		ended <- end{how, time.Since(<-reset)}
	})
	if c == nil {
		return st, obs
	}
	_, _ = c.Write([]byte("x"))
	time.Sleep(100 * time.Millisecond)
	_ = c.SetLinger(0)
	reset <- time.Now()
	_ = c.Close()
	select {
	case e := <-ended:
		if e.took > time.Second {
			return Fail, fmt.Sprintf("backend's connection ended only after %s", e.took.Round(time.Millisecond))
		}
		return rstVerdict(e.how, e.took)
	case <-time.After(6 * time.Second):
		return Fail, "backend connection never ended"
	}
}

func backendRefused(ctx context.Context, h *Harness) (string, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return NA, err.Error()
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	addr, err := h.StartTo(dead)
	if err != nil {
		return NA, "design did not start: " + err.Error()
	}
	for i := range 2 { // the second proves the design keeps serving
		c, err := dial(ctx, addr)
		if err != nil {
			return Fail, fmt.Sprintf("connect %d: %v", i+1, err)
		}
		how, took := endOf(c, 2*time.Second)
		_ = c.Close()
		if how == "open" || took > time.Second {
			return Fail, fmt.Sprintf("client left open %s with a refused backend", took.Round(time.Millisecond))
		}
	}
	return Pass, ""
}
