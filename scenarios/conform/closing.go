// Group B of the catalogue: closing, half-closing and resets.

package conform

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"time"
)

func fullCloseTeardown(ctx context.Context, h *Harness) (Status, string) {
	addr, err := h.Start(func(b *net.TCPConn) {
		_, _ = io.Copy(b, b)
		_ = b.CloseWrite()
	})
	if err != nil {
		return NA, "design did not start: " + err.Error()
	}
	base := h.FDs()
	c, err := dial(ctx, addr)
	if err != nil {
		return Fail, err.Error()
	}
	_, _ = c.Write([]byte("bye"))
	_ = c.CloseWrite()
	data, err := io.ReadAll(c)
	_ = c.Close()
	if err != nil || string(data) != "bye" {
		return Fail, fmt.Sprintf("echo got %q, %v", data, err)
	}
	if base < 0 {
		return Pass, "(fds not readable)"
	}
	if n, ok := fdsBackTo(h, base, time.Second); !ok {
		return Fail, fmt.Sprintf("%d sockets open 1 s after both FINs, %d before the connection", n, base)
	}
	return Pass, ""
}

func clientCloseFlushes(ctx context.Context, h *Harness) (Status, string) {
	const size = 4 << 20
	type res struct {
		n   int64
		sum [32]byte
		err error
	}
	got := make(chan res, 1)
	c, st, obs := setup(ctx, h, func(b *net.TCPConn) {
		time.Sleep(time.Second) // start reading late
		n, sum, err := drain(b)
		got <- res{n, sum, err}
	})
	if c == nil {
		return st, obs
	}
	sent, err := pattern(c, 4, size)
	_ = c.Close() // close() at once, not a half-close
	if err != nil {
		return Fail, "client write: " + err.Error()
	}
	select {
	case r := <-got:
		if r.err != nil || r.n != size || r.sum != sent {
			return Fail, fmt.Sprintf("backend got %d of %d bytes (checksum match %v, %v)", r.n, size, r.sum == sent, r.err)
		}
	case <-time.After(10 * time.Second):
		return Fail, "backend never got EOF"
	}
	return Pass, ""
}

func finThenRSTNoLoss(ctx context.Context, h *Harness) (Status, string) {
	c, st, obs := setup(ctx, h, func(b *net.TCPConn) {
		_, _ = b.Write(bytes.Repeat([]byte{7}, 64<<10))
		_ = b.CloseWrite()
		time.Sleep(200 * time.Millisecond)
		_ = b.SetLinger(0)
	})
	if c == nil {
		return st, obs
	}
	defer c.Close()
	time.Sleep(400 * time.Millisecond) // read only after the reset
	n, err := io.Copy(io.Discard, c)
	if err != nil || n != 64<<10 {
		return Fail, fmt.Sprintf("client got %d of %d bytes, then %v", n, 64<<10, err)
	}
	return Pass, ""
}

func clientHalfClose(ctx context.Context, h *Harness) (Status, string) {
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

func backendHalfClose(ctx context.Context, h *Harness) (Status, string) {
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

func backendCloseFlushes(ctx context.Context, h *Harness) (Status, string) {
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

func rstVerdict(end string, took time.Duration) (Status, string) {
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

func backendRST(ctx context.Context, h *Harness) (Status, string) {
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

func clientRST(ctx context.Context, h *Harness) (Status, string) {
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

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(2 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 64<<10)])
}
