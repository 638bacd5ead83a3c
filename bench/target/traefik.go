package target

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

// Traefik is traefik itself, built from its Go module by
// scripts/build-traefik.sh (make peers-traefik): the design l4proxy is
// modelled on. A TCP router with HostSNI(`*`) per backend kind and a UDP
// router, configured through the file provider.
type Traefik struct{}

func init() { Register(Traefik{}) }

// Name implements Target.
func (Traefik) Name() string { return "traefik" }

// Support implements Declarer.
func (Traefik) Support() Support {
	return Support{Lacks: map[Feature]string{
		FeatureIdleTimeout:  "traefik has no idle timeout for TCP routers (respondingTimeouts.readTimeout is a deadline from accept, cleared for HostSNI(`*`))",
		FeatureRequireProxy: "traefik's proxyProtocol.trustedIPs makes the PROXY header optional for those clients; it cannot require one",
		FeatureBufferSize:   "l4proxy's own setting",
		FeatureExtraArgs:    "l4proxy's own setting",
	}}
}

// DataPath implements DataPather. traefik v3.6 wraps every accepted conn
// in a tracking type without ReadFrom/WriteTo, so io.Copy cannot splice; a
// later release that splices shows up as a flagged verdict.
func (Traefik) DataPath() string { return copystrat.DataPathUserspace }

// TraefikPath is where the traefik binary is: $L4BENCH_TRAEFIK, else
// the build script's cache folder, else PATH.
func TraefikPath() (string, error) {
	if p := os.Getenv("L4BENCH_TRAEFIK"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: L4BENCH_TRAEFIK=%s: %v", ErrNotInstalled, p, err)
		}
		return p, nil
	}
	cache := os.Getenv("L4BENCH_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "l4bench")
	}
	if found, _ := filepath.Glob(filepath.Join(cache, "traefik-*", "traefik")); len(found) > 0 {
		return found[len(found)-1], nil
	}
	if p, err := exec.LookPath("traefik"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: run make peers-traefik (builds traefik from the Go module proxy into %s; takes minutes and ~3 GB of memory)", ErrNotInstalled, cache)
}

// Check implements Target.
func (Traefik) Check() (string, error) {
	bin, err := TraefikPath()
	if err != nil {
		return "", err
	}
	return versionOf("Version:", bin, "version"), nil
}

// Start implements Target. traefik listens before it has read its
// dynamic config, so readiness also waits until its API (on a port of
// its own, never the backends) lists every router.
func (t Traefik) Start(spec Spec) (*Instance, error) {
	if err := Refuse(t, spec); err != nil {
		return nil, err
	}
	bin, err := TraefikPath()
	if err != nil {
		return nil, err
	}
	inst := &Instance{Target: t.Name(), wrap: spec.Wrap, Addrs: map[string]string{}, host: spec.listenHost(), place: spec.Place,
		Config: filepath.Join(spec.Dir, "traefik.yaml")}
	api, err := FreePort("tcp")
	if err != nil {
		return nil, err
	}
	dynamic := filepath.Join(spec.Dir, "traefik-dynamic.yaml")
	var static, routers, services, udpRouters, udpServices strings.Builder
	// A short grace on stop: traefik otherwise takes ~2 s to exit even
	// with no connection open, which would dominate short cases.
	const lifeCycle = "      lifeCycle:\n        graceTimeOut: 100ms\n"
	fmt.Fprintf(&static, "# written by l4bench\nglobal:\n  checkNewVersion: false\n  sendAnonymousUsage: false\nlog:\n  level: ERROR\napi:\n  insecure: true\nentryPoints:\n  traefik:\n    address: %q\n    transport:\n%s", api, lifeCycle)
	var tcpNames, udpNames []string
	for _, kind := range spec.kinds(true) {
		addr, err := inst.pickAddr(kind)
		if err != nil {
			return nil, err
		}
		if kind == UDP {
			fmt.Fprintf(&static, "  %s:\n    address: %q\n    transport:\n%s", kind, addr+"/udp", lifeCycle)
			if spec.IdleTimeout > 0 {
				fmt.Fprintf(&static, "    udp:\n      timeout: %s\n", spec.IdleTimeout)
			}
			fmt.Fprintf(&udpRouters, "    %s:\n      entryPoints: [%s]\n      service: %s\n", kind, kind, kind)
			fmt.Fprintf(&udpServices, "    %s:\n      loadBalancer:\n        servers:\n          - address: %q\n", kind, spec.Backends[kind])
			udpNames = append(udpNames, kind)
			continue
		}
		fmt.Fprintf(&static, "  %s:\n    address: %q\n    transport:\n%s", kind, addr, lifeCycle)
		if spec.AcceptProxy && spec.HeaderTimeout > 0 {
			// readTimeout bounds the wait for the PROXY header.
			fmt.Fprintf(&static, "      respondingTimeouts:\n        readTimeout: %s\n", spec.HeaderTimeout)
		}
		if spec.AcceptProxy {
			static.WriteString("    proxyProtocol:\n      trustedIPs: [\"127.0.0.0/8\", \"::1/128\"]\n")
		}
		fmt.Fprintf(&routers, "    %s:\n      entryPoints: [%s]\n      rule: \"HostSNI(`*`)\"\n      service: %s\n", kind, kind, kind)
		fmt.Fprintf(&services, "    %s:\n      loadBalancer:\n        serversTransport: backend\n        servers:\n          - address: %q\n", kind, spec.Backends[kind])
		tcpNames = append(tcpNames, kind)
	}
	fmt.Fprintf(&static, "providers:\n  file:\n    filename: %q\n    watch: false\n", dynamic)
	dyn := "# written by l4bench\n"
	if len(tcpNames) > 0 {
		dyn += "tcp:\n  routers:\n" + routers.String() + "  services:\n" + services.String() + "  serversTransports:\n    backend:\n"
		if spec.ProxyProtocol > 0 {
			dyn += fmt.Sprintf("      proxyProtocol:\n        version: %d\n", spec.ProxyProtocol)
		}
		if spec.HalfClose > 0 {
			dyn += fmt.Sprintf("      terminationDelay: %s\n", spec.HalfClose)
		}
		if spec.ConnectTimeout > 0 {
			dyn += fmt.Sprintf("      dialTimeout: %s\n", spec.ConnectTimeout)
		}
		dyn += "      dialKeepAlive: 15s\n"
	}
	if len(udpNames) > 0 {
		dyn += "udp:\n  routers:\n" + udpRouters.String() + "  services:\n" + udpServices.String()
	}
	if err := writeFile(inst.Config, static.String()); err != nil {
		return nil, err
	}
	if err := writeFile(dynamic, dyn); err != nil {
		return nil, err
	}
	env := []string{"GOMAXPROCS=" + strconv.Itoa(spec.workers())}
	if _, err := inst.started(inst.launch(spec.Dir, "traefik.log", spec.CPUs, env, bin, "--configFile="+inst.Config)); err != nil {
		return nil, err
	}
	if err := waitRouters(api, tcpNames, udpNames, 15*time.Second); err != nil {
		_ = inst.Stop()
		return nil, err
	}
	return inst, nil
}

// waitRouters polls traefik's API until every router is enabled.
func waitRouters(api string, tcp, udp []string, timeout time.Duration) error {
	client := http.Client{Timeout: time.Second}
	enabled := func(kind string, names []string) (bool, string) {
		if len(names) == 0 {
			return true, ""
		}
		resp, err := client.Get("http://" + api + "/api/" + kind + "/routers")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var routers []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&routers); err != nil {
			return false, err.Error()
		}
		for _, n := range names {
			found := false
			for _, r := range routers {
				if r.Name == n+"@file" && r.Status == "enabled" {
					found = true
				}
			}
			if !found {
				return false, fmt.Sprintf("%s router %s not enabled (%d routers listed)", kind, n, len(routers))
			}
		}
		return true, ""
	}
	deadline := time.Now().Add(timeout)
	for {
		okTCP, why := enabled("tcp", tcp)
		okUDP, whyU := enabled("udp", udp)
		if okTCP && okUDP {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("traefik's routers not ready after %s: %s %s", timeout, why, whyU)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
