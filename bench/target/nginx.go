package target

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// Start implements Target.
func (n Nginx) Start(spec Spec) (*Instance, error) {
	if _, err := n.Check(); err != nil {
		return nil, err
	}
	bin, _ := lookPath("nginx", "nginx")
	inst := &Instance{Target: "nginx", wrap: spec.Wrap, Addrs: map[string]string{}, Config: filepath.Join(spec.Dir, "nginx.conf"), Skipped: map[string]string{}}
	if spec.ProxyProtocol == 2 {
		inst.Skipped[ProxyProtocolFeature] = "nginx stream sends PROXY protocol v1 only (proxy_protocol on)"
	}
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
			fmt.Fprintf(&b, "    server { listen %s udp; proxy_pass %s; proxy_timeout 3s; }\n", addr, spec.Backends[kind])
			continue
		}
		pp := ""
		if spec.ProxyProtocol == 1 {
			pp = " proxy_protocol on;"
		}
		fmt.Fprintf(&b, "    server { listen %s; proxy_pass %s; proxy_buffer_size 16k; proxy_half_close on;%s }\n", addr, spec.Backends[kind], pp)
	}
	b.WriteString("}\n")
	if err := writeFile(inst.Config, b.String()); err != nil {
		return nil, err
	}
	errLog := filepath.Join(spec.Dir, "nginx-error.log")
	return inst.started(inst.launch(spec.Dir, "nginx.log", spec.CPUs, nil, bin, "-e", errLog, "-p", spec.Dir, "-c", inst.Config))
}
