// Package proxy is l4proxy as a library: the configuration model (shaped
// after traefik's file provider for TCP and UDP services), its validation,
// and the Server that runs every entrypoint.
//
//	cfg, err := proxy.LoadConfig("l4proxy.yaml")
//	srv, err := proxy.New(cfg, slog.Default())
//	err = srv.Listen()          // binds every entrypoint, or none
//	go srv.Serve()
//	err = srv.Shutdown(ctx)     // stop accepting, drain, close
package proxy

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
	"github.com/l4bench/l4bench/proxy/tcp"
	"github.com/l4bench/l4bench/proxy/udp"
)

// Defaults for fields a configuration leaves out; Server applies them when
// it builds its entrypoints.
// Each is defined by the package that uses it; this is where the
// configuration and l4proxy's flags find them.
const (
	DefaultStrategy         = "splice"
	DefaultDialTimeout      = tcp.DefaultDialTimeout
	DefaultTerminationDelay = tcp.DefaultTerminationDelay
	DefaultUDPTimeout       = udp.DefaultTimeout
	DefaultShutdownGrace    = 10 * time.Second
	DefaultHeaderTimeout    = tcp.DefaultHeaderTimeout
	DefaultBufferSize       = copystrat.DefaultBufferSize
)

// Config is the whole model of one l4proxy process.
type Config struct {
	// EntryPoints are the listeners, by name.
	EntryPoints map[string]*EntryPoint `yaml:"entryPoints"`
	// TCP holds the services of TCP entrypoints.
	TCP Services `yaml:"tcp"`
	// UDP holds the services of UDP entrypoints.
	UDP Services `yaml:"udp"`
	// ShutdownGrace is how long open connections may drain after SIGTERM
	// (default 10s).
	ShutdownGrace *Duration `yaml:"shutdownGrace"`
	// LogLevel is debug, info, warn or error (default info).
	LogLevel string `yaml:"logLevel"`
}

// EntryPoint is one listener and the service it routes to.
type EntryPoint struct {
	// Address is host:port, with "/udp" appended for a UDP entrypoint
	// (traefik's notation), e.g. "127.0.0.1:5353/udp".
	Address string `yaml:"address"`
	// Service names a service in the section of the entrypoint's protocol.
	Service string `yaml:"service"`
	// IdleTimeout closes a TCP connection idle this long both ways (default
	// 0: never).
	IdleTimeout *Duration `yaml:"idleTimeout"`
	// UDPTimeout ends an idle UDP session (default 3s).
	UDPTimeout *Duration `yaml:"udpTimeout"`
	// MaxConns caps the open TCP connections of the entrypoint: over it, a
	// new connection is closed at once and counted (default 0: no cap).
	MaxConns int `yaml:"maxConns"`
	// ProxyProtocol, when set, requires PROXY headers from trusted clients.
	ProxyProtocol *EntryPointProxyProtocol `yaml:"proxyProtocol"`
}

// EntryPointProxyProtocol configures accepting PROXY headers.
type EntryPointProxyProtocol struct {
	// TrustedIPs are the IPs or CIDRs allowed to send headers; any other
	// client is refused.
	TrustedIPs []string `yaml:"trustedIPs"`
	// HeaderTimeout bounds the wait for the header (default 3s).
	HeaderTimeout *Duration `yaml:"headerTimeout"`
}

// Services are the services of one protocol, by name.
type Services struct {
	Services map[string]*Service `yaml:"services"`
}

// Service is exactly one of a load balancer over servers or a weighted
// set of other services.
type Service struct {
	LoadBalancer *LoadBalancer `yaml:"loadBalancer"`
	Weighted     *Weighted     `yaml:"weighted"`
}

// LoadBalancer spreads connections over servers by smooth weighted
// round-robin, and says how to forward to them.
type LoadBalancer struct {
	Servers []Backend `yaml:"servers"`
	// Strategy is the copy strategy: splice, buffered, pooled, lazysplice, loop or loopsplice (default
	// splice). TCP only.
	Strategy string `yaml:"strategy"`
	// BufferSize is the userspace buffer of buffered, pooled and loop, in bytes
	// (default 16384).
	BufferSize int `yaml:"bufferSize"`
	// ProxyProtocol sends a PROXY header of this version to the servers.
	ProxyProtocol *ProxyProtocol `yaml:"proxyProtocol"`
	// TerminationDelay: once one direction is done, how long the other may
	// stay idle before both close (default 100ms; negative: never).
	TerminationDelay *Duration `yaml:"terminationDelay"`
	// DialTimeout bounds the connect to a server (default 5s).
	DialTimeout *Duration `yaml:"dialTimeout"`
	// TryNextServer retries a failed dial on the next server (default
	// false: the client is closed).
	TryNextServer bool `yaml:"tryNextServer"`
}

// ProxyProtocol selects the PROXY protocol version sent to servers.
type ProxyProtocol struct {
	Version int `yaml:"version"`
}

// Backend is one server of a load balancer.
type Backend struct {
	Address string `yaml:"address"`
	// Weight defaults to 1; 0 takes the server out of rotation.
	Weight *int `yaml:"weight"`
}

// Weighted picks among other services by weight.
type Weighted struct {
	Services []WeightedService `yaml:"services"`
}

// WeightedService names a service and its weight (default 1).
type WeightedService struct {
	Name   string `yaml:"name"`
	Weight *int   `yaml:"weight"`
}

// Duration is a time.Duration written in Go's syntax ("250ms", "-1s").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a duration such as 250ms, got a %s", n.Line, kindName(n.Kind))
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q (use Go syntax such as 250ms, 5s, -1s)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the duration, or def when d is nil.
func (d *Duration) D(def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return time.Duration(*d)
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	default:
		return "value"
	}
}

func durationPtr(d time.Duration) *Duration { v := Duration(d); return &v }
