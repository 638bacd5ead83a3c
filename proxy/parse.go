package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
	"gopkg.in/yaml.v3"
)

// ConfigError is a problem in a configuration, with where it is.
type ConfigError struct {
	File string // the config file, or "" for flags
	Line int    // 1-based; 0 when unknown
	Path string // the dotted path of the value, e.g. tcp.services.web.loadBalancer.servers[0].address
	Msg  string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// LoadConfig reads, parses and validates a YAML configuration file.
func LoadConfig(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseConfig(file, data)
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

// ParseConfig parses and validates a YAML configuration. Unknown fields
// are errors. The returned error is one line naming the file, the line,
// the path of the value and what is expected.
func ParseConfig(file string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(file, err)
	}
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ConfigError{File: file, Msg: "empty configuration: expected entryPoints and services"}
		}
		return nil, yamlError(file, err)
	}
	if _, err := cfg.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.File = file
			ce.Line = lineOf(&root, ce.Path)
		}
		return nil, err
	}
	return &cfg, nil
}

// yamlError folds yaml.v3's multi-line errors into one line with the
// first problem's line number.
func yamlError(file string, err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = strings.TrimPrefix(msg, "yaml: ")
	first := strings.TrimSpace(strings.SplitN(msg, "\n", 2)[0])
	ce := &ConfigError{File: file, Msg: first}
	if m := yamlLine.FindStringSubmatch(first); m != nil {
		ce.Line, _ = strconv.Atoi(m[1])
		ce.Msg = strings.Replace(first, m[0], "", 1)
	}
	ce.Msg = strings.ReplaceAll(ce.Msg, "in type proxy.", "in ")
	return ce
}

// lineOf finds the line of a dotted path such as a.b[2].c in a YAML tree,
// or of its deepest existing parent.
func lineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, part := range splitPath(path) {
		var next *yaml.Node
		switch {
		case strings.HasPrefix(part, "["):
			i, _ := strconv.Atoi(strings.Trim(part, "[]"))
			if n.Kind == yaml.SequenceNode && i < len(n.Content) {
				next = n.Content[i]
			}
		case n.Kind == yaml.MappingNode:
			for k := 0; k+1 < len(n.Content); k += 2 {
				if n.Content[k].Value == part {
					next = n.Content[k+1]
					if next.Kind == yaml.ScalarNode || next.Line == 0 {
						line = n.Content[k].Line
					}
					break
				}
			}
		}
		if next == nil {
			return line
		}
		n = next
		if n.Line > 0 {
			line = n.Line
		}
	}
	return line
}

func splitPath(path string) []string {
	var parts []string
	for _, p := range strings.Split(path, ".") {
		for p != "" {
			i := strings.Index(p, "[")
			switch {
			case i < 0:
				parts = append(parts, p)
				p = ""
			case i > 0:
				parts = append(parts, p[:i])
				p = p[i:]
			default:
				j := strings.Index(p, "]")
				if j < 0 { // a "[" in a key's name, not an index
					parts = append(parts, p)
					p = ""
					break
				}
				parts = append(parts, p[:j+1])
				p = p[j+1:]
			}
		}
	}
	return parts
}

func cfgErr(path, format string, args ...any) error {
	return &ConfigError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// SplitEntryPointAddress separates traefik's "host:port/udp" notation.
func SplitEntryPointAddress(addr string) (hostport string, udp bool, err error) {
	hostport = addr
	if i := strings.LastIndex(addr, "/"); i >= 0 {
		switch strings.ToLower(addr[i+1:]) {
		case "udp":
			udp = true
		case "tcp":
		default:
			return "", false, fmt.Errorf("%q: unknown protocol suffix %q (use /tcp or /udp)", addr, addr[i:])
		}
		hostport = addr[:i]
	}
	if err := checkHostPort(hostport, true); err != nil {
		return "", false, err
	}
	return hostport, udp, nil
}

// checkHostPort accepts host:port with a numeric port; listen addresses
// may leave the host empty and use port 0.
func checkHostPort(addr string, listen bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 || (!listen && p == 0) {
		lo := 1
		if listen {
			lo = 0
		}
		return fmt.Errorf("%q has an invalid port %q (expected a number %d-65535)", addr, port, lo)
	}
	if host == "" && !listen {
		return fmt.Errorf("%q has no host", addr)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q has an invalid host %q", addr, host)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Model is a validated configuration with every value that had to be
// parsed to be checked kept parsed: what a Server is built from, so that
// nothing is parsed twice or with its error dropped.
type Model struct {
	Config *Config
	// EntryPoints in name order.
	EntryPoints []ValidEntryPoint
	// Strategies resolves each TCP load balancer's copy strategy.
	Strategies map[*LoadBalancer]copystrat.Strategy
}

// ValidEntryPoint is one entrypoint of a Model.
type ValidEntryPoint struct {
	Name     string
	Address  string // host:port, without "/udp"
	UDP      bool
	Trusted  []netip.Prefix // PROXY headers accepted from these (TCP only)
	Original *EntryPoint
}

// Validate checks the whole configuration and returns its Model, or the
// first problem as a *ConfigError naming the path of the value.
func (c *Config) Validate() (*Model, error) {
	m := &Model{Config: c, Strategies: map[*LoadBalancer]copystrat.Strategy{}}
	if err := c.validate(m); err != nil {
		return nil, err
	}
	return m, nil
}

func (c *Config) validate(m *Model) error {
	if len(c.EntryPoints) == 0 {
		return cfgErr("entryPoints", "no entrypoint: expected at least one, e.g. entryPoints: {web: {address: \"127.0.0.1:8000\", service: app}}")
	}
	if c.ShutdownGrace != nil && *c.ShutdownGrace < 0 {
		return cfgErr("shutdownGrace", "must not be negative, got %s", c.ShutdownGrace.D(0))
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return cfgErr("logLevel", "unknown level %q (choices: debug, info, warn, error)", c.LogLevel)
	}
	for _, name := range sortedKeys(c.EntryPoints) {
		ep := c.EntryPoints[name]
		path := "entryPoints." + name
		if ep == nil {
			return cfgErr(path, "empty entrypoint: expected address and service")
		}
		hostport, udp, err := SplitEntryPointAddress(ep.Address)
		if ep.Address == "" {
			err = errors.New("missing: expected host:port or host:port/udp")
		}
		if err != nil {
			return cfgErr(path+".address", "%v", err)
		}
		section, sname := c.TCP, "tcp"
		if udp {
			section, sname = c.UDP, "udp"
		}
		if ep.Service == "" {
			return cfgErr(path+".service", "missing: expected the name of a service under %s.services", sname)
		}
		if _, ok := section.Services[ep.Service]; !ok {
			return cfgErr(path+".service", "unknown service %q (%s.services has: %s)", ep.Service, sname, strings.Join(sortedKeys(section.Services), ", "))
		}
		if d := ep.IdleTimeout.D(0); d < 0 {
			return cfgErr(path+".idleTimeout", "must not be negative, got %s", d)
		}
		if ep.MaxConns < 0 {
			return cfgErr(path+".maxConns", "must not be negative, got %d (0 means no cap)", ep.MaxConns)
		}
		if ep.MaxConns > 0 && udp {
			return cfgErr(path+".maxConns", "caps TCP connections; a UDP entrypoint has none")
		}
		if d := ep.UDPTimeout.D(DefaultUDPTimeout); d <= 0 {
			return cfgErr(path+".udpTimeout", "must be positive, got %s", d)
		}
		valid := ValidEntryPoint{Name: name, Address: hostport, UDP: udp, Original: ep}
		if pp := ep.ProxyProtocol; pp != nil {
			if udp {
				return cfgErr(path+".proxyProtocol", "accepting PROXY headers is for TCP entrypoints only")
			}
			if len(pp.TrustedIPs) == 0 {
				return cfgErr(path+".proxyProtocol.trustedIPs", "empty: list the IPs or CIDRs allowed to send PROXY headers, e.g. [127.0.0.1/32]")
			}
			for i, s := range pp.TrustedIPs {
				p, err := ParsePrefix(s)
				if err != nil {
					return cfgErr(fmt.Sprintf("%s.proxyProtocol.trustedIPs[%d]", path, i), "%v", err)
				}
				valid.Trusted = append(valid.Trusted, p)
			}
			if d := pp.HeaderTimeout.D(DefaultHeaderTimeout); d <= 0 {
				return cfgErr(path+".proxyProtocol.headerTimeout", "must be positive, got %s", d)
			}
		}
		m.EntryPoints = append(m.EntryPoints, valid)
	}
	if err := c.TCP.validate("tcp", false, m); err != nil {
		return err
	}
	if err := c.UDP.validate("udp", true, m); err != nil {
		return err
	}
	for _, ep := range m.EntryPoints {
		section, sname := c.TCP, "tcp"
		if ep.UDP {
			section, sname = c.UDP, "udp"
		}
		var loop error
		section.eachServer(sname+".services", ep.Original.Service, func(path, addr string) {
			if loop == nil && forwardsToItself(ep.Address, addr) {
				loop = cfgErr(path+".address", "%q is where entrypoint %s listens: every connection would be forwarded back to l4proxy, over and over, until it runs out of descriptors", addr, ep.Name)
			}
		})
		if loop != nil {
			return loop
		}
	}
	return nil
}

// eachServer calls f with the path and address of every server a
// connection to service name can reach. Loops between services are
// already refused.
func (s Services) eachServer(section, name string, f func(path, addr string)) {
	svc := s.Services[name]
	path := section + "." + name
	switch {
	case svc == nil:
	case svc.LoadBalancer != nil:
		for i, b := range svc.LoadBalancer.Servers {
			f(fmt.Sprintf("%s.loadBalancer.servers[%d]", path, i), b.Address)
		}
	case svc.Weighted != nil:
		for _, ws := range svc.Weighted.Services {
			s.eachServer(section, ws.Name, f)
		}
	}
}

// forwardsToItself reports whether a server address is the entrypoint's
// own listening address, as far as the configuration shows: the same
// port, and the same IP, or a loopback server ("localhost" included)
// under a listener on every address or on loopback. A host name other
// than localhost, or a local address of another interface, is not caught.
func forwardsToItself(listen, server string) bool {
	lh, lp, err1 := net.SplitHostPort(listen)
	sh, sp, err2 := net.SplitHostPort(server)
	if err1 != nil || err2 != nil || lp != sp || lp == "0" {
		return false
	}
	var sIP netip.Addr
	if strings.EqualFold(sh, "localhost") {
		sIP = netip.MustParseAddr("127.0.0.1")
	} else if a, err := netip.ParseAddr(sh); err == nil {
		sIP = a.Unmap()
	} else {
		return false
	}
	if lh == "" {
		return sIP.IsLoopback() || sIP.IsUnspecified()
	}
	lIP, err := netip.ParseAddr(lh)
	if err != nil {
		return strings.EqualFold(lh, "localhost") && sIP.IsLoopback()
	}
	lIP = lIP.Unmap()
	switch {
	case lIP == sIP:
		return true
	case lIP.IsUnspecified():
		return sIP.IsLoopback() || sIP.IsUnspecified()
	default:
		return lIP.IsLoopback() && sIP.IsUnspecified()
	}
}

func (s Services) validate(section string, udp bool, m *Model) error {
	for _, name := range sortedKeys(s.Services) {
		svc := s.Services[name]
		path := section + ".services." + name
		if svc == nil || (svc.LoadBalancer == nil) == (svc.Weighted == nil) {
			return cfgErr(path, "expected exactly one of loadBalancer or weighted")
		}
		if lb := svc.LoadBalancer; lb != nil {
			if err := lb.validate(path+".loadBalancer", udp, m); err != nil {
				return err
			}
			continue
		}
		if len(svc.Weighted.Services) == 0 {
			return cfgErr(path+".weighted.services", "empty: expected a list of {name, weight}")
		}
		for i, ws := range svc.Weighted.Services {
			wp := fmt.Sprintf("%s.weighted.services[%d]", path, i)
			if _, ok := s.Services[ws.Name]; !ok {
				return cfgErr(wp+".name", "unknown service %q (%s.services has: %s)", ws.Name, section, strings.Join(sortedKeys(s.Services), ", "))
			}
			if ws.Weight != nil && *ws.Weight < 0 {
				return cfgErr(wp+".weight", "must be 0 or more, got %d", *ws.Weight)
			}
		}
		if cycle := s.cycleFrom(name, map[string]bool{}); cycle != "" {
			return cfgErr(path+".weighted", "services refer to each other in a loop: %s", cycle)
		}
	}
	return nil
}

// cycleFrom returns a description of a reference loop reachable from name.
func (s Services) cycleFrom(name string, onPath map[string]bool) string {
	if onPath[name] {
		return name
	}
	svc := s.Services[name]
	if svc == nil || svc.Weighted == nil {
		return ""
	}
	onPath[name] = true
	defer delete(onPath, name)
	for _, ws := range svc.Weighted.Services {
		if c := s.cycleFrom(ws.Name, onPath); c != "" {
			return name + " -> " + c
		}
	}
	return ""
}

func (l *LoadBalancer) validate(path string, udp bool, m *Model) error {
	if len(l.Servers) == 0 {
		return cfgErr(path+".servers", "no server: expected at least one {address: host:port}")
	}
	for i, s := range l.Servers {
		sp := fmt.Sprintf("%s.servers[%d]", path, i)
		if err := checkHostPort(s.Address, false); err != nil {
			return cfgErr(sp+".address", "%v", err)
		}
		if s.Weight != nil && *s.Weight < 0 {
			return cfgErr(sp+".weight", "must be 0 or more, got %d", *s.Weight)
		}
	}
	if udp {
		switch {
		case l.Strategy != "":
			return cfgErr(path+".strategy", "copy strategies apply to TCP services only")
		case l.ProxyProtocol != nil:
			return cfgErr(path+".proxyProtocol", "PROXY headers are sent on TCP services only")
		case l.TerminationDelay != nil:
			return cfgErr(path+".terminationDelay", "applies to TCP services only")
		}
	}
	if !udp {
		name := l.Strategy
		if name == "" {
			name = DefaultStrategy
		}
		s, err := copystrat.Lookup(name)
		if err != nil {
			return cfgErr(path+".strategy", "%v", err)
		}
		m.Strategies[l] = s
	}
	if l.BufferSize < 0 {
		return cfgErr(path+".bufferSize", "must be positive, got %d", l.BufferSize)
	}
	if l.ProxyProtocol != nil && (l.ProxyProtocol.Version < 0 || l.ProxyProtocol.Version > 2) {
		return cfgErr(path+".proxyProtocol.version", "must be 0, 1 or 2, got %d", l.ProxyProtocol.Version)
	}
	if d := l.DialTimeout.D(DefaultDialTimeout); d <= 0 {
		return cfgErr(path+".dialTimeout", "must be positive, got %s", d)
	}
	return nil
}

// ParsePrefix accepts an IP or a CIDR.
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("%q is neither an IP nor a CIDR", s)
}
