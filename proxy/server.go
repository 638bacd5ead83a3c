package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
	"github.com/l4bench/l4bench/proxy/lb"
	"github.com/l4bench/l4bench/proxy/tcp"
	"github.com/l4bench/l4bench/proxy/udp"
)

// Server runs every entrypoint of a Config.
type Server struct {
	cfg    *Config
	logger *slog.Logger
	eps    []*entrypoint

	wg      sync.WaitGroup
	errOnce sync.Once
	err     chan error
}

type entrypoint struct {
	name    string
	address string
	udp     bool
	tcp     *tcp.Proxy
	udpP    *udp.Proxy
	ln      *net.TCPListener
	pc      *net.UDPConn
}

// New validates cfg and builds its server (NewServer). It does not listen.
func New(cfg *Config, logger *slog.Logger) (*Server, error) {
	m, err := cfg.Validate()
	if err != nil {
		return nil, err
	}
	return NewServer(m, logger), nil
}

// NewServer builds the server of a validated configuration. It does not
// listen.
func NewServer(m *Model, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	cfg := m.Config
	s := &Server{cfg: cfg, logger: logger, err: make(chan error, 1)}
	tcpSvcs := map[string]tcp.Service{}
	udpSvcs := map[string]udp.Service{}
	for _, v := range m.EntryPoints {
		ep := v.Original
		e := &entrypoint{name: v.Name, address: v.Address, udp: v.UDP}
		if v.UDP {
			e.udpP = &udp.Proxy{
				Name:    v.Name,
				Service: buildService(cfg.UDP, ep.Service, udpSvcs, udpLeaf),
				Timeout: ep.UDPTimeout.D(DefaultUDPTimeout),
				Logger:  logger,
			}
		} else {
			e.tcp = &tcp.Proxy{
				Name:        v.Name,
				Service:     buildService(cfg.TCP, ep.Service, tcpSvcs, func(l *LoadBalancer) tcp.Service { return tcpLeaf(l, m.Strategies[l], logger) }),
				IdleTimeout: ep.IdleTimeout.D(0),
				MaxConns:    ep.MaxConns,
				Logger:      logger,
			}
			if pp := ep.ProxyProtocol; pp != nil {
				e.tcp.AcceptProxy = &tcp.AcceptProxy{HeaderTimeout: pp.HeaderTimeout.D(DefaultHeaderTimeout), Trusted: v.Trusted}
			}
		}
		s.eps = append(s.eps, e)
	}
	return s
}

func weightOf(w *int) int {
	if w == nil {
		return 1
	}
	return *w
}

// buildService turns a named service into a picker, sharing one picker per
// service name so that the rotation of a service referenced twice is one.
func buildService[T any](sec Services, name string, built map[string]lb.Picker[T], leaf func(*LoadBalancer) lb.Picker[T]) lb.Picker[T] {
	if p, ok := built[name]; ok {
		return p
	}
	svc := sec.Services[name]
	var p lb.Picker[T]
	if svc.LoadBalancer != nil {
		p = leaf(svc.LoadBalancer)
	} else {
		var children []lb.Weighted[lb.Picker[T]]
		for _, ws := range svc.Weighted.Services {
			children = append(children, lb.Weighted[lb.Picker[T]]{Item: buildService(sec, ws.Name, built, leaf), Weight: weightOf(ws.Weight)})
		}
		p = lb.NewTree(children, true)
	}
	built[name] = p
	return p
}

func tcpLeaf(l *LoadBalancer, strategy copystrat.Strategy, logger *slog.Logger) tcp.Service {
	version := 0
	if l.ProxyProtocol != nil {
		version = l.ProxyProtocol.Version
	}
	var servers []lb.Weighted[*tcp.Upstream]
	for _, srv := range l.Servers {
		servers = append(servers, lb.Weighted[*tcp.Upstream]{Weight: weightOf(srv.Weight), Item: &tcp.Upstream{
			Address:          srv.Address,
			Strategy:         strategy,
			Copy:             copystrat.Options{BufferSize: l.BufferSize, Logger: logger},
			DialTimeout:      l.DialTimeout.D(DefaultDialTimeout),
			ProxyProtocol:    version,
			TerminationDelay: terminationDelay(l.TerminationDelay),
			TryNextServer:    l.TryNextServer,
		}})
	}
	return lb.New(servers, true)
}

// terminationDelay resolves a configured delay for tcp.Upstream, whose
// zero value is the default: a configured 0 still closes at once.
func terminationDelay(d *Duration) time.Duration {
	if v := d.D(DefaultTerminationDelay); v != 0 {
		return v
	}
	return tcp.CloseAtOnce
}

func udpLeaf(l *LoadBalancer) udp.Service {
	var servers []lb.Weighted[string]
	for _, srv := range l.Servers {
		servers = append(servers, lb.Weighted[string]{Item: srv.Address, Weight: weightOf(srv.Weight)})
	}
	return lb.New(servers, true)
}

// Listen binds every entrypoint. On any failure it closes what it bound
// and returns an error naming the entrypoint and address.
func (s *Server) Listen() error {
	for _, e := range s.eps {
		var err error
		if e.udp {
			var addr *net.UDPAddr
			if addr, err = net.ResolveUDPAddr("udp", e.address); err == nil {
				e.pc, err = net.ListenUDP("udp", addr)
			}
		} else {
			var addr *net.TCPAddr
			if addr, err = net.ResolveTCPAddr("tcp", e.address); err == nil {
				e.ln, err = net.ListenTCP("tcp", addr)
			}
		}
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("entrypoint %s: cannot listen on %s: %w", e.name, e.address, unwrapOp(err))
		}
	}
	for _, e := range s.eps {
		s.logger.Info("listening", "entrypoint", e.name, "address", s.Addrs()[e.name].String(), "udp", e.udp)
	}
	return nil
}

func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

func (s *Server) closeListeners() {
	for _, e := range s.eps {
		if e.ln != nil {
			_ = e.ln.Close()
		}
		if e.pc != nil {
			_ = e.pc.Close()
		}
	}
}

// Addrs returns each entrypoint's bound address by name (useful with port 0).
func (s *Server) Addrs() map[string]net.Addr {
	out := map[string]net.Addr{}
	for _, e := range s.eps {
		switch {
		case e.ln != nil:
			out[e.name] = e.ln.Addr()
		case e.pc != nil:
			out[e.name] = e.pc.LocalAddr()
		}
	}
	return out
}

// Serve runs every entrypoint bound by Listen until Shutdown, or until one
// fails, and returns that failure.
func (s *Server) Serve() error {
	for _, e := range s.eps {
		s.wg.Add(1)
		go s.serveEntrypoint(e)
	}
	s.wg.Wait()
	select {
	case err := <-s.err:
		return err
	default:
		return nil
	}
}

func (s *Server) serveEntrypoint(e *entrypoint) {
	defer s.wg.Done()
	var err error
	if e.udp {
		err = e.udpP.Serve(e.pc)
	} else {
		err = e.tcp.Serve(e.ln)
	}
	if err != nil {
		s.errOnce.Do(func() { s.err <- fmt.Errorf("entrypoint %s: %w", e.name, err) })
	}
}

// ShutdownGrace is the configured drain period.
func (s *Server) ShutdownGrace() time.Duration {
	return s.cfg.ShutdownGrace.D(DefaultShutdownGrace)
}

// Shutdown stops accepting on every entrypoint at once, lets open TCP
// connections finish until ctx is done, then closes the rest and waits for
// every goroutine. It returns ctx's error when connections had to be cut.
func (s *Server) Shutdown(ctx context.Context) error {
	for _, e := range s.eps { // stop accepting everywhere first
		if e.ln != nil {
			_ = e.ln.Close()
		}
	}
	errs := make([]error, len(s.eps))
	var wg sync.WaitGroup
	for i, e := range s.eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if e.udp {
				errs[i] = e.udpP.Shutdown(ctx)
			} else {
				errs[i] = e.tcp.Shutdown(ctx)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
