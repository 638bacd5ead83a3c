// Package target starts and stops the designs under test: no proxy
// (direct), l4proxy with each copy strategy, and the real peers from
// Debian's packages (haproxy in three splice modes, nginx stream, socat).
//
//	t, _ := target.Lookup("haproxy-splice")
//	if _, err := t.Check(); err != nil { /* skip, with err as the reason */ }
//	inst, err := t.Start(target.Spec{Dir: dir, Backends: backends, Workers: 1})
//	defer inst.Stop()
//	addr := inst.Addrs[backend.Echo]
//
// Every design is started the same way: a config written into the run's
// folder, loopback ports picked by the runner, the same worker count and,
// when asked, the same CPU set through taskset.
package target

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/l4bench/l4bench/bench/place"
	"github.com/l4bench/l4bench/bench/report"
)

// UDP is the route to a UDP echo backend. TCP routes are keyed by their
// backend's kind (bench/backend's Echo, Sink, Source); each route gets
// its own entrypoint.
const UDP = "udp"

// Spec is what the runner asks of a design.
type Spec struct {
	// Dir receives the design's config and log.
	Dir string
	// Backends maps a backend kind to its address. Each kind present gets
	// an entrypoint, except UDP on designs that cannot forward UDP.
	Backends map[string]string
	// Workers is the number of worker processes or threads (default 1).
	Workers int
	// CPUs, when set, pins the design with taskset -c (for example "1").
	CPUs string
	// ProxyProtocol sends PROXY headers of this version to the backends,
	// on designs that can (0: none).
	ProxyProtocol int
	// HalfClose is how long a design keeps the other direction open after
	// one side sent FIN (l4proxy terminationDelay, haproxy client-fin and
	// server-fin, socat -t); 0 keeps each design's default. Conformance
	// sets it alike for every design.
	HalfClose time.Duration
	// IdleTimeout closes a TCP connection (both sides) after this long
	// without a byte either way, and ends a UDP session idle this long
	// (l4proxy idleTimeout/udpTimeout, haproxy timeout client/server,
	// nginx proxy_timeout, socat -T); 0 keeps each design's default.
	IdleTimeout time.Duration
	// ConnectTimeout bounds the connect to a backend (l4proxy dialTimeout,
	// haproxy timeout connect, nginx proxy_connect_timeout, socat
	// connect-timeout); 0 keeps each design's default.
	ConnectTimeout time.Duration
	// AcceptProxy makes every TCP entrypoint require a PROXY header (v1
	// or v2) from loopback clients (l4proxy trustedIPs, haproxy
	// accept-proxy, nginx listen ... proxy_protocol with realip); a
	// design that lacks FeatureAcceptProxy refuses to start.
	AcceptProxy bool
	// HeaderTimeout bounds the wait for that header (l4proxy
	// headerTimeout, haproxy timeout client, nginx
	// proxy_protocol_timeout); 0 keeps each design's default.
	HeaderTimeout time.Duration
	// Wildcard binds the entrypoints to 0.0.0.0 instead of 127.0.0.1
	// (Addrs then say 0.0.0.0:port; clients pick a loopback address).
	Wildcard bool
	// IPv6 binds the entrypoints to ::1 instead of 127.0.0.1.
	IPv6 bool
	// BufferSize sets l4proxy's buffer for buffered, pooled and loop (0: default).
	BufferSize int
	// Extra are additional arguments for l4proxy designs (--log-level ...).
	Extra []string
	// Wrap runs the design under another command, e.g. strace arguments
	// ending before the design's own command line.
	Wrap []string
	// Place is where the design runs and what its entrypoints bind (the
	// zero Place: this host, on loopback).
	Place place.Place
}

func (s Spec) workers() int {
	if s.Workers <= 0 {
		return 1
	}
	return s.Workers
}

// Target is one design under test.
type Target interface {
	// Name is the target's name on the command line and in results.
	Name() string
	// Check returns the design's version, or why it cannot run here with
	// what to do about it.
	Check() (version string, err error)
	// Start launches the design and waits until every entrypoint listens.
	Start(spec Spec) (*Instance, error)
}

// DataPather is a target that declares how it moves payload bytes:
// "splice" or "userspace" (proxy/copy's DataPath constants, the same words
// as strace's verdicts), or "" when it does not promise one (haproxy's
// splice-auto decides at run time). The syscalls scenarios fail an
// l4proxy target, and flag a peer, whose traced data path is not the
// declared one.
type DataPather interface {
	DataPath() string
}

// ExpectedDataPath is the data path a target declares, "" when none. A
// name with a build (l4proxy-splice@head) or a feature variant
// (l4proxy-splice+proxy-v2) keeps its design's declaration: a feature
// must not change how bytes move.
func ExpectedDataPath(name string) string {
	name, _, _ = strings.Cut(name, "@")
	name, _, _ = strings.Cut(name, "+")
	t, err := Lookup(name)
	if err != nil {
		return ""
	}
	if d, ok := t.(DataPather); ok {
		return d.DataPath()
	}
	return ""
}

var (
	mu       sync.Mutex
	registry = map[string]Target{}
	order    []string
)

// Register adds a target; the order of registration is the order of
// listings and tables.
func Register(t Target) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[t.Name()]; dup {
		panic("target registered twice: " + t.Name())
	}
	registry[t.Name()] = t
	order = append(order, t.Name())
}

// Names lists every target: direct, our proxy's strategies, then the
// peers, each group in registration order.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	out := append([]string(nil), order...)
	rank := func(n string) int {
		for i, p := range []string{report.Direct, "l4proxy-", "haproxy-", "nginx", "socat"} {
			if strings.HasPrefix(n, p) {
				return i
			}
		}
		return 5
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

// Lookup finds a target by name or says what the choices are.
func Lookup(name string) (Target, error) {
	mu.Lock()
	t, ok := registry[name]
	mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("unknown target %q (choices: %s)", name, strings.Join(Names(), ", "))
	}
	return t, nil
}

// FreePort returns a loopback address with a port that was free a moment
// ago, for configs that need the port written in advance.
func FreePort(network string) (string, error) { return freePortOn(network, "127.0.0.1", true) }

// freePortOn picks a port of the design range not handed out in this run,
// and with probe, one that a bind on host proves free. Without probe (a
// namespace the run made, which holds nothing but its design, and whose
// address this process cannot bind) the first port not handed out is it.
func freePortOn(network, host string, probe bool) (string, error) {
	lo, hi := portRange()
	portsMu.Lock()
	defer portsMu.Unlock()
	if len(portsGiven) > (hi-lo)/2 {
		clear(portsGiven) // a very long run: the oldest designs are gone
	}
	start := lo + rand.IntN(hi-lo)
	for k := 0; k < hi-lo; k++ {
		port := lo + (start-lo+k)%(hi-lo)
		if portsGiven[port] {
			continue
		}
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		var err error
		switch {
		case !probe:
		case network == "udp":
			var pc net.PacketConn
			if pc, err = net.ListenPacket("udp", addr); err == nil {
				_ = pc.Close()
			}
		default:
			var ln net.Listener
			if ln, err = net.Listen("tcp", addr); err == nil {
				_ = ln.Close()
			}
		}
		if err == nil {
			portsGiven[port] = true
			return addr, nil
		}
	}
	return "", fmt.Errorf("no free %s port on %s in %d-%d", network, host, lo, hi-1)
}

// Ports for designs come from below the kernel's ephemeral range, so that
// no backend listening on port 0 and no client's local port can take one
// between the pick and the design's bind; and none is handed out twice in
// a run, so designs started at once never race for one.
var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// portRange is [10000, the start of ip_local_port_range), or
// [10000, 32768) when that cannot be read.
func portRange() (lo, hi int) {
	lo, hi = 10000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > lo+1000 {
				hi = n
			}
		}
	}
	return lo, hi
}

// listenHost is the address the design's entrypoints bind.
func (s Spec) listenHost() string {
	switch {
	case !s.Place.IsHost():
		return s.Place.Addr
	case s.Wildcard:
		return "0.0.0.0"
	case s.IPv6:
		return "::1"
	}
	return "127.0.0.1"
}

// pickAddr picks a free address for a backend kind's entrypoint on the
// instance's host and records it in the instance.
func (i *Instance) pickAddr(kind string) (string, error) {
	network := "tcp"
	if kind == UDP {
		network = "udp"
	}
	host := i.host
	if host == "" {
		host = "127.0.0.1"
	}
	free, err := freePortOn(network, host, i.place.IsHost())
	if err != nil {
		return "", err
	}
	// Go reports a socket bound to 0.0.0.0 as [::]:port; designs must get
	// the host asked for (nginx's [::] would be IPv6 only).
	_, port, _ := net.SplitHostPort(free)
	addr := net.JoinHostPort(host, port)
	i.Addrs[kind] = addr
	return addr, nil
}

// kinds returns the backend kinds of a spec in a stable order, without
// UDP unless withUDP.
func (s Spec) kinds(withUDP bool) []string {
	var out []string
	for k := range s.Backends {
		if k == UDP && !withUDP {
			continue
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ErrNotInstalled marks a peer that is missing.
var ErrNotInstalled = errors.New("not installed")
