package target

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

// GoSplicePipeSize is the size Go gives its splice pipes (1 MiB), which
// haproxy's splicing modes are configured with too.
const GoSplicePipeSize = 1 << 20

// TCP keep-alive: l4proxy (like Go, and so traefik) keeps both sides of a
// connection alive with copystrat.KeepAliveIdle and its siblings;
// haproxy, nginx and socat leave it off by default, and the runner turns
// it on in each, with those timings where the design can set them, so
// that every design does the same job (a 40-round A/B put keep-alive at
// 2% of l4proxy's connection rate). l4proxy's loop strategies set it on
// the backend sockets they connect 1 s after the connect (proxy/copy's
// keepAliveAfter), which haproxy and nginx cannot.
const (
	keepAliveIdle     = copystrat.KeepAliveIdle
	keepAliveInterval = copystrat.KeepAliveInterval
	keepAliveCount    = copystrat.KeepAliveCount
)

// HAProxy is haproxy in mode tcp with one of three splice settings:
//
//   - "splice": option splice-request and splice-response, forcing
//     splice(2) both ways: the only way to measure haproxy splicing, as
//     splice-auto did not splice on loopback when tried;
//   - "splice-auto": option splice-auto, as most users configure it; the
//     syscall profile reports what it really does;
//   - "copy": global nosplice, a userspace copy.
type HAProxy struct{ Mode string }

func init() {
	for _, m := range []string{"splice", "splice-auto", "copy"} {
		Register(HAProxy{Mode: m})
	}
}

// Name implements Target.
func (h HAProxy) Name() string { return "haproxy-" + h.Mode }

// DataPath implements DataPather: splice when forced, a userspace copy
// with nosplice, and no promise for splice-auto, whose profile is
// reported as it is.
func (h HAProxy) DataPath() string {
	switch h.Mode {
	case "splice":
		return copystrat.DataPathSplice
	case "copy":
		return copystrat.DataPathUserspace
	}
	return ""
}

// Check implements Target.
func (h HAProxy) Check() (string, error) {
	bin, err := lookPath("haproxy", "haproxy")
	if err != nil {
		return "", err
	}
	return versionOf("HAProxy version ", bin, "-v"), nil
}

// Support implements Declarer.
func (h HAProxy) Support() Support {
	return Support{Lacks: map[Feature]string{
		FeatureUDP:        "haproxy (community) does not forward UDP",
		FeatureBufferSize: "l4proxy's own setting",
		FeatureExtraArgs:  "l4proxy's own setting",
	}}
}

// Start implements Target.
func (h HAProxy) Start(spec Spec) (*Instance, error) {
	if err := Refuse(h, spec); err != nil {
		return nil, err
	}
	bin, err := lookPath("haproxy", "haproxy")
	if err != nil {
		return nil, err
	}
	inst := &Instance{Target: h.Name(), wrap: spec.Wrap, Addrs: map[string]string{}, host: spec.listenHost(), place: spec.Place, Config: filepath.Join(spec.Dir, h.Name()+".cfg")}
	var b strings.Builder
	// maxconn 7000: with splicing haproxy reserves fds for maxconn/4 pipes
	// on top of two per connection, and must fit this machine's hard limit
	// of 20000 fds, which it cannot raise.
	fmt.Fprintf(&b, "# written by l4bench\nglobal\n    nbthread %d\n    maxconn 7000\n", spec.workers())
	if h.Mode == "copy" {
		b.WriteString("    nosplice\n")
	} else {
		// Go grows each splice pipe to 1 MiB (internal/poll); haproxy keeps
		// the kernel's 64 KiB unless told. The same pipe size for both
		// splicing designs, so syscalls per MiB and CPU compare alike.
		fmt.Fprintf(&b, "    tune.pipesize %d\n", GoSplicePipeSize)
	}
	// timeout client also bounds the wait for an accepted PROXY header.
	client, server, connect := time.Hour, time.Hour, 5*time.Second
	if spec.IdleTimeout > 0 {
		client, server = spec.IdleTimeout, spec.IdleTimeout
	}
	if spec.AcceptProxy && spec.HeaderTimeout > 0 && spec.IdleTimeout == 0 {
		client = spec.HeaderTimeout
	}
	if spec.ConnectTimeout > 0 {
		connect = spec.ConnectTimeout
	}
	// retries 0: l4proxy, nginx (one server) and socat make one connect
	// attempt; haproxy's default of 3 would make it alone retry.
	fmt.Fprintf(&b, "\ndefaults\n    mode tcp\n    maxconn 7000\n    retries 0\n    timeout connect %dms\n    timeout client %dms\n    timeout server %dms\n",
		connect.Milliseconds(), client.Milliseconds(), server.Milliseconds())
	if spec.HalfClose > 0 {
		fmt.Fprintf(&b, "    timeout client-fin %dms\n    timeout server-fin %dms\n", spec.HalfClose.Milliseconds(), spec.HalfClose.Milliseconds())
	}
	for _, side := range []string{"cli", "srv"} {
		fmt.Fprintf(&b, "    option %stcpka\n    %stcpka-idle %ds\n    %stcpka-intvl %ds\n    %stcpka-cnt %d\n",
			side, side, keepAliveIdle, side, keepAliveInterval, side, keepAliveCount)
	}
	switch h.Mode {
	case "splice":
		b.WriteString("    option splice-request\n    option splice-response\n")
	case "splice-auto":
		b.WriteString("    option splice-auto\n")
	}
	send := ""
	switch spec.ProxyProtocol {
	case 1:
		send = " send-proxy"
	case 2:
		send = " send-proxy-v2"
	}
	for _, kind := range spec.kinds(false) {
		addr, err := inst.pickAddr(kind)
		if err != nil {
			return nil, err
		}
		accept := ""
		if spec.AcceptProxy {
			accept = " accept-proxy"
		}
		fmt.Fprintf(&b, "\nfrontend fe_%s\n    bind %s%s\n    default_backend be_%s\n\nbackend be_%s\n    server s1 %s%s\n", kind, addr, accept, kind, kind, spec.Backends[kind], send)
	}
	if err := writeFile(inst.Config, b.String()); err != nil {
		return nil, err
	}
	return inst.started(inst.launch(spec.Dir, h.Name()+".log", spec.CPUs, nil, bin, "-db", "-f", inst.Config))
}
