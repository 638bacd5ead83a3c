package load

import (
	"context"
	"fmt"
	"io"
	"net"
)

// IdleConns holds open connections. Close releases them.
type IdleConns struct {
	conns []net.Conn
}

// Len is the number of connections held.
func (i *IdleConns) Len() int { return len(i.conns) }

// Close closes every connection.
func (i *IdleConns) Close() {
	for _, c := range i.conns {
		_ = c.Close()
	}
	i.conns = nil
}

// OpenIdle opens n connections to an echo backend, echoes warmup bytes on
// each (so the design's buffers have been used once, as after real
// traffic), and leaves them idle. On error it closes what it opened.
func OpenIdle(ctx context.Context, addr string, n, warmup int) (*IdleConns, error) {
	ic := &IdleConns{conns: make([]net.Conn, 0, n)}
	msg := make([]byte, warmup)
	buf := make([]byte, warmup)
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			ic.Close()
			return nil, err
		}
		c, err := dialTCP(ctx, addr)
		if err != nil {
			ic.Close()
			return nil, fmt.Errorf("idle connection %d of %d: %w", i+1, n, err)
		}
		ic.conns = append(ic.conns, c)
		if warmup > 0 {
			if _, err := c.Write(msg); err != nil {
				ic.Close()
				return nil, fmt.Errorf("idle connection %d warm-up: %w", i+1, err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				ic.Close()
				return nil, fmt.Errorf("idle connection %d warm-up: %w", i+1, err)
			}
		}
	}
	return ic, nil
}
