// Package tcp forwards TCP connections: it accepts on a listener, reads an
// optional PROXY header from trusted clients, picks a backend, dials it,
// sends an optional PROXY header, and runs one copy strategy per direction
// with half-close, resets, idle timeout and termination delay.
//
//	up := &tcp.Upstream{Address: "127.0.0.1:8080", Strategy: copy.Splice{}}
//	p := &tcp.Proxy{Service: lb.New([]lb.Weighted[*tcp.Upstream]{{Item: up, Weight: 1}}, false)}
//	go p.Serve(listener)
//	defer p.Shutdown(ctx)
package tcp

import (
	"time"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
	"github.com/l4bench/l4bench/proxy/lb"
)

// Upstream is one backend server and how to talk to it. The zero value of
// each field but Address is usable.
type Upstream struct {
	// Address is the backend's host:port; host names are resolved at dial time.
	Address string
	// Strategy moves the bytes. Nil means splice.
	Strategy copystrat.Strategy
	// Copy tunes the strategy (buffer size).
	Copy copystrat.Options
	// DialTimeout bounds connecting to the backend. Zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// ProxyProtocol is the PROXY protocol version sent to the backend:
	// 0 (none), 1 or 2.
	ProxyProtocol int
	// TerminationDelay is how long the remaining direction may stay idle
	// after the other one finished (EOF) before both are closed. Zero means
	// DefaultTerminationDelay, so that the zero Upstream passes a
	// half-closed response on; NeverTerminate (any negative value) lets it
	// stay idle forever; CloseAtOnce closes both as soon as one is done.
	TerminationDelay time.Duration
	// TryNextServer makes a failed dial try the next server of the service.
	TryNextServer bool
}

// Defaults of an Upstream's zero fields, and the termination delay's two
// special values. proxy's configuration and l4proxy's flags use these.
const (
	DefaultDialTimeout      = 5 * time.Second
	DefaultTerminationDelay = 100 * time.Millisecond
	// NeverTerminate: the remaining direction may stay idle forever.
	NeverTerminate time.Duration = -1
	// CloseAtOnce: both directions close as soon as one is done. (One
	// nanosecond of idle time: no byte can move in it.)
	CloseAtOnce time.Duration = 1
)

func (u *Upstream) terminationDelay() time.Duration {
	if u.TerminationDelay == 0 {
		return DefaultTerminationDelay
	}
	return u.TerminationDelay
}

func (u *Upstream) strategy() copystrat.Strategy {
	if u.Strategy == nil {
		return copystrat.Splice{}
	}
	return u.Strategy
}

func (u *Upstream) dialTimeout() time.Duration {
	if u.DialTimeout <= 0 {
		return DefaultDialTimeout
	}
	return u.DialTimeout
}

// Service picks the upstream for a new connection: an lb.Balancer of
// servers or an lb.Tree of services.
type Service = lb.Picker[*Upstream]
