// Group A of the catalogue: bytes through a TCP connection.

package conform

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"time"
)

func basicBidir(ctx context.Context, h *Harness) (Status, string) {
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

func backendSpeaksFirst(ctx context.Context, h *Harness) (Status, string) {
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

func tinyTransfers(ctx context.Context, h *Harness) (Status, string) {
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

func largeChecksum(ctx context.Context, h *Harness) (Status, string) {
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

func smallWritesOrder(ctx context.Context, h *Harness) (Status, string) {
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
