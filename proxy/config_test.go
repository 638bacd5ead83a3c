package proxy

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

func TestParseFullConfig(t *testing.T) {
	cfg, err := LoadConfig("testdata/full.yaml")
	require.NoError(t, err)
	assert.Len(t, cfg.EntryPoints, 3)
	assert.Equal(t, 5*time.Second, cfg.ShutdownGrace.D(0))
	app := cfg.TCP.Services["app"].LoadBalancer
	assert.Equal(t, "splice", app.Strategy)
	assert.Equal(t, 3, *app.Servers[0].Weight)
	assert.Nil(t, app.Servers[1].Weight, "weight defaults to 1 later")
	assert.Equal(t, -time.Second, app.TerminationDelay.D(0))
	assert.Equal(t, 2, app.ProxyProtocol.Version)
	assert.True(t, app.TryNextServer)
	assert.Equal(t, []string{"127.0.0.1/32", "::1"}, cfg.EntryPoints["internal"].ProxyProtocol.TrustedIPs)
	_, udp, err := SplitEntryPointAddress(cfg.EntryPoints["dns"].Address)
	require.NoError(t, err)
	assert.True(t, udp)

	srv, err := New(cfg, nil)
	require.NoError(t, err)
	assert.Len(t, srv.eps, 3)
}

// TestConfigErrors checks that each mistake is reported on one line with
// the file, the line of the bad value, its path and what is expected.
func TestConfigErrors(t *testing.T) {
	const base = `entryPoints:
  web:
    address: "127.0.0.1:8000"
    service: app
tcp:
  services:
    app:
      loadBalancer:
        servers:
          - address: "127.0.0.1:9000"
`
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown strategy", base + "        strategy: zerocopy\n",
			`c.yaml:11: tcp.services.app.loadBalancer.strategy: unknown strategy "zerocopy" (choices: ` + strings.Join(copystrat.Names(), ", ") + `)`},
		{"server not host:port", strings.Replace(base, `"127.0.0.1:9000"`, `"127.0.0.1"`, 1),
			`c.yaml:10: tcp.services.app.loadBalancer.servers[0].address: "127.0.0.1" is not host:port`},
		{"negative maxConns", strings.Replace(base, "    service: app\n", "    service: app\n    maxConns: -3\n", 1),
			`c.yaml:5: entryPoints.web.maxConns: must not be negative, got -3 (0 means no cap)`},
		{"negative weight", base + "            weight: -2\n",
			`c.yaml:11: tcp.services.app.loadBalancer.servers[0].weight: must be 0 or more, got -2`},
		{"no backend", strings.Replace(base, "        servers:\n          - address: \"127.0.0.1:9000\"\n", "        servers: []\n", 1),
			`c.yaml:9: tcp.services.app.loadBalancer.servers: no server`},
		{"proxy protocol version", base + "        proxyProtocol:\n          version: 3\n",
			`c.yaml:12: tcp.services.app.loadBalancer.proxyProtocol.version: must be 0, 1 or 2, got 3`},
		{"bad duration", base + "        dialTimeout: 5\n",
			`c.yaml:11: invalid duration "5"`},
		{"unknown field", base + "        retries: 3\n",
			`c.yaml:11: field retries not found in LoadBalancer`},
		{"unknown service", strings.Replace(base, "service: app", "service: api", 1),
			`c.yaml:4: entryPoints.web.service: unknown service "api" (tcp.services has: app)`},
		{"bad listen port", strings.Replace(base, `"127.0.0.1:8000"`, `"127.0.0.1:http"`, 1),
			`c.yaml:3: entryPoints.web.address: "127.0.0.1:http" has an invalid port "http"`},
		{"bad protocol suffix", strings.Replace(base, `"127.0.0.1:8000"`, `"127.0.0.1:8000/sctp"`, 1),
			`c.yaml:3: entryPoints.web.address: "127.0.0.1:8000/sctp": unknown protocol suffix "/sctp"`},
		{"bad trusted CIDR", strings.Replace(base, "    service: app\n", "    service: app\n    proxyProtocol:\n      trustedIPs: [\"10.0.0.0/33\"]\n", 1),
			`c.yaml:6: entryPoints.web.proxyProtocol.trustedIPs[0]: "10.0.0.0/33" is neither an IP nor a CIDR`},
		{"weighted loop", base + "    a:\n      weighted:\n        services:\n          - name: b\n    b:\n      weighted:\n        services:\n          - name: a\n",
			`tcp.services.a.weighted: services refer to each other in a loop: a -> b -> a`},
		{"both kinds", base + "        \n      weighted:\n        services:\n          - name: app\n",
			`c.yaml:8: tcp.services.app: expected exactly one of loadBalancer or weighted`},
		{"server is the entrypoint itself", strings.Replace(base, `"127.0.0.1:9000"`, `"127.0.0.1:8000"`, 1),
			`c.yaml:10: tcp.services.app.loadBalancer.servers[0].address: "127.0.0.1:8000" is where entrypoint web listens: every connection would be forwarded back to l4proxy`},
		{"server is the entrypoint itself, through a weighted service", strings.Replace(strings.Replace(base, "service: app", "service: w", 1), `"127.0.0.1:9000"`, `"localhost:8000"`, 1) + "    w:\n      weighted:\n        services:\n          - name: app\n",
			`c.yaml:10: tcp.services.app.loadBalancer.servers[0].address: "localhost:8000" is where entrypoint web listens`},
		{"syntax", "entryPoints: [\n", `c.yaml:1: did not find expected node content`},
		{"empty", "", `c.yaml: empty configuration`},
		{"strategy on udp", `entryPoints:
  dns:
    address: "127.0.0.1:53/udp"
    service: r
udp:
  services:
    r:
      loadBalancer:
        strategy: splice
        servers:
          - address: "127.0.0.1:5353"
`, `c.yaml:9: udp.services.r.loadBalancer.strategy: copy strategies apply to TCP services only`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("c.yaml", []byte(tt.yaml))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}

func TestLoadConfigUnreadable(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing.yaml")
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// FuzzParseConfig checks that no input crashes the parser and that every
// error is a single line; accepted configs must build a server.
func FuzzParseConfig(f *testing.F) {
	full, err := os.ReadFile("testdata/full.yaml")
	require.NoError(f, err)
	f.Add(full)
	f.Add([]byte("entryPoints: {a: {address: ':0', service: s}}\ntcp: {services: {s: {loadBalancer: {servers: [{address: 'h:1'}]}}}}"))
	f.Add([]byte("entryPoints:\n  x:\n    address: 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("f.yaml", data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		if _, err := New(cfg, nil); err != nil {
			t.Fatalf("valid config did not build: %v", err)
		}
	})
}

// Validate hands back what it parsed, so that the server never parses a
// value again: entrypoint addresses split, trusted networks parsed, each
// TCP load balancer's strategy resolved (the default one included).
func TestValidateReturnsTheParsedModel(t *testing.T) {
	cfg, err := ParseConfig("m.yaml", []byte(`
entryPoints:
  web:
    address: "127.0.0.1:0"
    service: app
    proxyProtocol: {trustedIPs: ["127.0.0.1", "10.0.0.0/8"]}
  dns:
    address: "127.0.0.1:0/udp"
    service: dns
tcp:
  services:
    app:
      loadBalancer:
        servers: [{address: "127.0.0.1:9"}]
udp:
  services:
    dns:
      loadBalancer:
        servers: [{address: "127.0.0.1:53"}]
`))
	require.NoError(t, err)
	m, err := cfg.Validate()
	require.NoError(t, err)
	require.Len(t, m.EntryPoints, 2)
	dns, web := m.EntryPoints[0], m.EntryPoints[1]
	assert.Equal(t, "dns", dns.Name, "in name order")
	assert.True(t, dns.UDP)
	assert.Equal(t, "127.0.0.1:0", dns.Address, "without /udp")
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}, web.Trusted)
	lb := cfg.TCP.Services["app"].LoadBalancer
	require.Contains(t, m.Strategies, lb)
	assert.Equal(t, DefaultStrategy, m.Strategies[lb].Name())
	assert.NotContains(t, m.Strategies, cfg.UDP.Services["dns"].LoadBalancer, "UDP has no copy strategy")

	cfg.EntryPoints["web"].Address = "nowhere"
	_, err = cfg.Validate()
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "entryPoints.web.address", ce.Path)
}

// splitPath cuts an error's dotted path into keys and indexes, and ends on
// any input: a "[" with no "]" is part of a key's name (the fuzzer found
// one that looped forever, growing until the process was killed).
func TestSplitPath(t *testing.T) {
	tests := []struct {
		path string
		want []string
	}{
		{"a.b[2].c", []string{"a", "b", "[2]", "c"}},
		{"tcp.routers[0][1]", []string{"tcp", "routers", "[0]", "[1]"}},
		{"a.(x [y", []string{"a", "(x ", "[y"}},
		{"[", []string{"["}},
		{"", nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			assert.Equal(t, tt.want, splitPath(tt.path))
		})
	}
}

// TestForwardsToItself: which server addresses are the entrypoint's own.
func TestForwardsToItself(t *testing.T) {
	tests := []struct {
		listen, server string
		want           bool
	}{
		{"127.0.0.1:8000", "127.0.0.1:8000", true},
		{"127.0.0.1:8000", "localhost:8000", true},
		{"127.0.0.1:8000", "0.0.0.0:8000", true},
		{"127.0.0.1:8000", "[::ffff:127.0.0.1]:8000", true},
		{":8000", "127.0.0.1:8000", true},
		{":8000", "127.0.0.2:8000", true},
		{"0.0.0.0:8000", "localhost:8000", true},
		{"[::]:8000", "[::1]:8000", true},
		{"localhost:8000", "127.0.0.1:8000", true},
		{"[::1]:8000", "[::1]:8000", true},
		{"127.0.0.1:8000", "127.0.0.1:8001", false},
		{"127.0.0.1:8000", "127.0.0.2:8000", false},
		{"127.0.0.1:8000", "[::1]:8000", false},
		{"10.0.0.1:8000", "127.0.0.1:8000", false},
		{":8000", "10.0.0.5:8000", false}, // maybe this host, maybe not: not caught
		{":8000", "backend.internal:8000", false},
		{"127.0.0.1:0", "127.0.0.1:0", false}, // port 0 listens anywhere
	}
	for _, tt := range tests {
		t.Run(tt.listen+"->"+tt.server, func(t *testing.T) {
			assert.Equal(t, tt.want, forwardsToItself(tt.listen, tt.server))
		})
	}
}
