package target

import (
	"fmt"
	"strconv"

	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

// Socat is socat forking one process per connection, with its default
// 8 KiB buffer: the simplest userspace relay.
type Socat struct{}

func init() { Register(Socat{}) }

// Name implements Target.
func (Socat) Name() string { return "socat" }

// DataPath implements DataPather: socat reads and writes through a buffer.
func (Socat) DataPath() string { return copystrat.DataPathUserspace }

// Check implements Target.
func (Socat) Check() (string, error) {
	bin, err := lookPath("socat", "socat")
	if err != nil {
		return "", err
	}
	return versionOf("socat version ", bin, "-V"), nil
}

// Support implements Declarer.
func (Socat) Support() Support {
	const noPP = "socat has no PROXY protocol"
	return Support{Lacks: map[Feature]string{
		FeatureUDP:           "socat forks a process per datagram in UDP mode, not a session proxy",
		FeatureSendProxyV1:   noPP,
		FeatureSendProxyV2:   noPP,
		FeatureAcceptProxy:   noPP,
		FeatureRequireProxy:  noPP,
		FeatureHeaderTimeout: noPP,
		FeatureBufferSize:    "l4proxy's own setting",
		FeatureExtraArgs:     "l4proxy's own setting",
	}}
}

// Start implements Target: one socat process per backend kind (TCP only:
// socat's UDP fork mode serves one datagram per child).
func (sc Socat) Start(spec Spec) (*Instance, error) {
	if err := Refuse(sc, spec); err != nil {
		return nil, err
	}
	bin, err := lookPath("socat", "socat")
	if err != nil {
		return nil, err
	}
	inst := &Instance{Target: "socat", wrap: spec.Wrap, Addrs: map[string]string{}, host: spec.listenHost(), place: spec.Place}
	var err2 error
	for _, kind := range spec.kinds(false) {
		addr, err := inst.pickAddr(kind)
		if err != nil {
			return nil, err
		}
		host, port, _ := splitHostPortNum(addr)
		proto := "TCP-LISTEN:"
		if spec.IPv6 {
			proto = "TCP6-LISTEN:"
		}
		// Keep-alive on both sides, as the other designs have it.
		keepAlive := fmt.Sprintf(",keepalive,keepidle=%d,keepintvl=%d,keepcnt=%d", keepAliveIdle, keepAliveInterval, keepAliveCount)
		listen := proto + strconv.Itoa(port) + ",bind=" + host + ",reuseaddr,fork,backlog=4096" + keepAlive
		argv := []string{bin}
		if spec.HalfClose > 0 { // socat closes 0.5 s after the first EOF by default
			argv = append(argv, "-t", fmt.Sprintf("%.3f", spec.HalfClose.Seconds()))
		}
		if spec.IdleTimeout > 0 {
			argv = append(argv, "-T", fmt.Sprintf("%.3f", spec.IdleTimeout.Seconds()))
		}
		connect := "TCP:" + spec.Backends[kind] + keepAlive
		if spec.ConnectTimeout > 0 {
			connect += fmt.Sprintf(",connect-timeout=%.3f", spec.ConnectTimeout.Seconds())
		}
		argv = append(argv, listen, connect)
		if err2 = inst.launch(spec.Dir, "socat-"+kind+".log", spec.CPUs, nil, argv...); err2 != nil {
			break
		}
	}
	return inst.started(err2)
}
