package load

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
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

// openers is how many connections OpenIdle sets up at once. Set up one
// after the other, 3000 connections with a 64 KiB echo each took most of
// a tcp-idle sample's 5 s; the state they are left in is the same.
const openers = 8

// OpenIdle opens n connections to an echo backend, echoes warmup bytes on
// each (so the design's buffers have been used once, as after real
// traffic), and leaves them idle. Up to openers connections are set up at
// once. On error it closes what it opened and names the first failure.
func OpenIdle(ctx context.Context, addr string, n, warmup int) (*IdleConns, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conns := make([]net.Conn, n)
	var (
		once  sync.Once
		first error // the failure that cancelled the others
	)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(openers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, warmup)
			buf := make([]byte, warmup)
			for i := range next {
				var err error
				if conns[i], err = openOne(ctx, addr, msg, buf); err != nil {
					once.Do(func() {
						first = fmt.Errorf("idle connection %d of %d: %w", i+1, n, err)
						cancel()
					})
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	ic := &IdleConns{conns: make([]net.Conn, 0, n)}
	for _, c := range conns {
		if c != nil {
			ic.conns = append(ic.conns, c)
		}
	}
	firstErr := first
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if len(ic.conns) < n {
		ic.Close()
		if firstErr == nil {
			firstErr = fmt.Errorf("opened %d of %d idle connections", len(ic.conns), n)
		}
		return nil, firstErr
	}
	return ic, nil
}

// openOne dials one connection and echoes msg over it, closing it on error.
func openOne(ctx context.Context, addr string, msg, buf []byte) (net.Conn, error) {
	c, err := dialTCP(ctx, addr)
	if err != nil {
		return nil, err
	}
	if len(msg) > 0 {
		// A cancelled run (or another connection's failure) ends a
		// warm-up that waits on a design which never echoes.
		stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
		if _, err = c.Write(msg); err == nil {
			_, err = io.ReadFull(c, buf)
		}
		if !stop() && err == nil {
			err = ctx.Err()
		}
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	return c, nil
}
