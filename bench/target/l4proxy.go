package target

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

// L4Proxy is our proxy with one copy strategy. One target is registered
// per strategy, so a new strategy file adds a target with no change here.
//
// Build and Bin name another build of l4proxy, for A/B runs (l4bench run
// --l4proxy-bin NAME=PATH): the target is then l4proxy-<strategy>@NAME
// and runs PATH.
type L4Proxy struct {
	Strategy string
	Build    string
	Bin      string
}

func init() {
	for _, s := range copystrat.Names() {
		Register(L4Proxy{Strategy: s})
	}
}

// Name implements Target.
func (l L4Proxy) Name() string {
	if l.Build != "" {
		return "l4proxy-" + l.Strategy + "@" + l.Build
	}
	return "l4proxy-" + l.Strategy
}

// DataPath implements DataPather: the strategy's own declaration.
func (l L4Proxy) DataPath() string {
	s, err := copystrat.Lookup(l.Strategy)
	if err != nil {
		return ""
	}
	return s.DataPath()
}

// Of returns the target of one strategy for another build of l4proxy.
func (l L4Proxy) Of(build, bin string) L4Proxy {
	return L4Proxy{Strategy: l.Strategy, Build: build, Bin: bin}
}

func (l L4Proxy) binary() (string, error) {
	if l.Bin == "" {
		return l4proxyBinary()
	}
	if !IsExecutable(l.Bin) {
		return "", fmt.Errorf("build %s: %s is not an executable file", l.Build, l.Bin)
	}
	return l.Bin, nil
}

// L4ProxyPath is where the l4proxy binary is; by default beside the
// running executable, else on PATH. Tests set it.
var L4ProxyPath = ""

// IsExecutable says whether path is a file that can be executed.
func IsExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func l4proxyBinary() (string, error) {
	if L4ProxyPath != "" {
		if !IsExecutable(L4ProxyPath) {
			return "", fmt.Errorf("l4proxy binary %s is not an executable file; run make build", L4ProxyPath)
		}
		return L4ProxyPath, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "l4proxy")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("l4proxy"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("l4proxy binary not found beside l4bench or on PATH; run make build")
}

// Check implements Target.
func (l L4Proxy) Check() (string, error) {
	bin, err := l.binary()
	if err != nil {
		return "", err
	}
	v := Version(bin)
	if l.Build != "" {
		return "build " + l.Build + ": " + v, nil
	}
	return v, nil
}

// Version is what an l4proxy binary says of itself (--version, without
// the program name), or "(no --version: an older build)" for one built
// before the flag existed.
func Version(bin string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	line, _, _ := strings.Cut(string(out), "\n")
	if v, ok := strings.CutPrefix(strings.TrimSpace(line), "l4proxy "); err == nil && ok {
		return v
	}
	return "(no --version: an older build)"
}

// Support implements Declarer: l4proxy has every feature a Spec can ask.
func (l L4Proxy) Support() Support { return Support{} }

// Start implements Target: one TCP entrypoint per backend kind and a UDP
// entrypoint, in one config, GOMAXPROCS set to the worker count.
func (l L4Proxy) Start(spec Spec) (*Instance, error) {
	if err := Refuse(l, spec); err != nil {
		return nil, err
	}
	bin, err := l.binary()
	if err != nil {
		return nil, err
	}
	inst := &Instance{Target: l.Name(), wrap: spec.Wrap, Addrs: map[string]string{}, host: spec.listenHost(), place: spec.Place, Config: filepath.Join(spec.Dir, l.Name()+".yaml")}
	var eps, tcp, udp strings.Builder
	for _, kind := range spec.kinds(true) {
		addr, err := inst.pickAddr(kind)
		if err != nil {
			return nil, err
		}
		suffix := ""
		if kind == UDP {
			suffix = "/udp"
		}
		fmt.Fprintf(&eps, "  %s:\n    address: %q\n    service: %s\n", kind, addr+suffix, kind)
		if spec.IdleTimeout > 0 {
			key := "idleTimeout"
			if kind == UDP {
				key = "udpTimeout"
			}
			fmt.Fprintf(&eps, "    %s: %s\n", key, spec.IdleTimeout)
		}
		if spec.AcceptProxy && kind != UDP {
			eps.WriteString("    proxyProtocol:\n      trustedIPs: [\"127.0.0.0/8\", \"::1/128\"]\n")
			if spec.HeaderTimeout > 0 {
				fmt.Fprintf(&eps, "      headerTimeout: %s\n", spec.HeaderTimeout)
			}
		}
		if kind == UDP {
			fmt.Fprintf(&udp, "    %s:\n      loadBalancer:\n        servers:\n          - address: %q\n", kind, spec.Backends[kind])
			continue
		}
		fmt.Fprintf(&tcp, "    %s:\n      loadBalancer:\n        strategy: %s\n        servers:\n          - address: %q\n", kind, l.Strategy, spec.Backends[kind])
		if spec.HalfClose > 0 {
			fmt.Fprintf(&tcp, "        terminationDelay: %s\n", spec.HalfClose)
		}
		if spec.ConnectTimeout > 0 {
			fmt.Fprintf(&tcp, "        dialTimeout: %s\n", spec.ConnectTimeout)
		}
		if spec.BufferSize > 0 && l.Strategy != "splice" {
			fmt.Fprintf(&tcp, "        bufferSize: %d\n", spec.BufferSize)
		}
		if spec.ProxyProtocol > 0 {
			fmt.Fprintf(&tcp, "        proxyProtocol:\n          version: %d\n", spec.ProxyProtocol)
		}
	}
	cfg := "# written by l4bench\nlogLevel: warn\nentryPoints:\n" + eps.String()
	if tcp.Len() > 0 {
		cfg += "tcp:\n  services:\n" + tcp.String()
	}
	if udp.Len() > 0 {
		cfg += "udp:\n  services:\n" + udp.String()
	}
	if err := writeFile(inst.Config, cfg); err != nil {
		return nil, err
	}
	argv := append([]string{bin, "--config", inst.Config}, spec.Extra...)
	env := []string{"GOMAXPROCS=" + strconv.Itoa(spec.workers())}
	return inst.started(inst.launch(spec.Dir, l.Name()+".log", spec.CPUs, env, argv...))
}
