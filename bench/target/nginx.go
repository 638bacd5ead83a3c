package target

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

// streamModule is where Debian's libnginx-mod-stream puts the module.
const streamModule = "/usr/lib/nginx/modules/ngx_stream_module.so"

// Nginx is nginx's stream module: a userspace copy through
// proxy_buffer_size (16k) buffers, one worker process by default, with
// proxy_half_close on so that a client's FIN is passed on like the other
// designs do (off by default: nginx then drops replies still in flight).
type Nginx struct{}

func init() { Register(Nginx{}) }

// Name implements Target.
func (Nginx) Name() string { return "nginx" }

// DataPath implements DataPather: nginx stream copies through its
// proxy_buffer_size buffers.
func (Nginx) DataPath() string { return copystrat.DataPathUserspace }

// Check implements Target.
func (Nginx) Check() (string, error) {
	bin, err := lookPath("nginx", "nginx")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(streamModule); err != nil {
		return "", fmt.Errorf("%w: the stream module (%s); run scripts/install-peers.sh (Debian package libnginx-mod-stream)", ErrNotInstalled, streamModule)
	}
	return versionOf("nginx version: nginx", bin, "-v"), nil
}

// Support implements Declarer.
func (n Nginx) Support() Support {
	return Support{
		Lacks: map[Feature]string{
			FeatureSendProxyV2: "nginx stream sends PROXY protocol v1 only (proxy_protocol on)",
			FeatureBufferSize:  "l4proxy's own setting",
			FeatureExtraArgs:   "l4proxy's own setting",
		},
		Approximate: map[Feature]string{
			FeatureHalfClose: "nginx 1.22 has no half-close timeout: with proxy_half_close on, a half-closed connection stays open until proxy_timeout (the idle timeout) ends it",
		},
	}
}

// Start implements Target.
func (n Nginx) Start(spec Spec) (*Instance, error) {
	if err := Refuse(n, spec); err != nil {
		return nil, err
	}
	if _, err := n.Check(); err != nil {
		return nil, err
	}
	bin, _ := lookPath("nginx", "nginx")
	// nginx reads relative paths from its prefix (-p), so every path it
	// gets is absolute.
	dir, err := filepath.Abs(spec.Dir)
	if err != nil {
		return nil, err
	}
	spec.Dir = dir
	inst := &Instance{Target: "nginx", wrap: spec.Wrap, Addrs: map[string]string{}, host: spec.listenHost(), place: spec.Place, Config: filepath.Join(spec.Dir, "nginx.conf")}
	var b strings.Builder
	fmt.Fprintf(&b, `# written by l4bench
load_module %s;
worker_processes %d;
worker_rlimit_nofile 20000;
daemon off;
user root;
pid %s;
error_log %s warn;
events { worker_connections 9000; }
stream {
`, streamModule, spec.workers(), filepath.Join(spec.Dir, "nginx.pid"), filepath.Join(spec.Dir, "nginx-error.log"))
	for _, kind := range spec.kinds(true) {
		addr, err := inst.pickAddr(kind)
		if err != nil {
			return nil, err
		}
		if kind == UDP {
			udpTimeout := 3 * time.Second
			if spec.IdleTimeout > 0 {
				udpTimeout = spec.IdleTimeout
			}
			fmt.Fprintf(&b, "    server { listen %s udp; proxy_pass %s; proxy_timeout %dms; }\n", addr, spec.Backends[kind], udpTimeout.Milliseconds())
			continue
		}
		var opts, listen string
		if spec.ProxyProtocol == 1 {
			opts += " proxy_protocol on;"
		}
		if spec.IdleTimeout > 0 {
			opts += fmt.Sprintf(" proxy_timeout %dms;", spec.IdleTimeout.Milliseconds())
		}
		if spec.ConnectTimeout > 0 {
			opts += fmt.Sprintf(" proxy_connect_timeout %dms;", spec.ConnectTimeout.Milliseconds())
		}
		if spec.AcceptProxy {
			// realip makes the header's source the client address nginx
			// passes on (and re-sends with proxy_protocol on).
			listen = " proxy_protocol"
			opts += " set_real_ip_from 127.0.0.0/8;"
			if spec.HeaderTimeout > 0 {
				opts += fmt.Sprintf(" proxy_protocol_timeout %dms;", spec.HeaderTimeout.Milliseconds())
			}
		}
		// Keep-alive as the other designs have it (keepAliveIdle); nginx
		// sets the upstream socket's on or off only, with the kernel's
		// timings.
		listen += fmt.Sprintf(" so_keepalive=%ds:%ds:%d", keepAliveIdle, keepAliveInterval, keepAliveCount)
		opts += " proxy_socket_keepalive on;"
		fmt.Fprintf(&b, "    server { listen %s%s; proxy_pass %s; proxy_buffer_size 16k; proxy_half_close on;%s }\n", addr, listen, spec.Backends[kind], opts)
	}
	b.WriteString("}\n")
	if err := writeFile(inst.Config, b.String()); err != nil {
		return nil, err
	}
	errLog := filepath.Join(spec.Dir, "nginx-error.log")
	return inst.started(inst.launch(spec.Dir, "nginx.log", spec.CPUs, nil, bin, "-e", errLog, "-p", spec.Dir, "-c", inst.Config))
}
