package proxy

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Describe writes the resolved routes of a validated configuration, with
// every default filled in, as l4proxy --check prints them: each
// entrypoint and the services it reaches.
func (m *Model) Describe(w io.Writer) {
	c := m.Config
	fmt.Fprintf(w, "shutdown grace %s\n", c.ShutdownGrace.D(DefaultShutdownGrace))
	shown := map[string]bool{}
	var describe func(section Services, proto, name, indent string)
	describe = func(section Services, proto, name, indent string) {
		svc := section.Services[name]
		key := proto + "/" + name
		if shown[key] {
			fmt.Fprintf(w, "%sservice %s (as above)\n", indent, name)
			return
		}
		shown[key] = true
		if wt := svc.Weighted; wt != nil {
			var parts []string
			for _, ws := range wt.Services {
				parts = append(parts, fmt.Sprintf("%s %d", ws.Name, weightOf(ws.Weight)))
			}
			fmt.Fprintf(w, "%sservice %s: weighted round-robin over %s\n", indent, name, strings.Join(parts, ", "))
			for _, ws := range wt.Services {
				describe(section, proto, ws.Name, indent+"  ")
			}
			return
		}
		lb := svc.LoadBalancer
		fmt.Fprintf(w, "%sservice %s: weighted round-robin over %d server(s)\n", indent, name, len(lb.Servers))
		for _, s := range lb.Servers {
			fmt.Fprintf(w, "%s  %s weight %d\n", indent, s.Address, weightOf(s.Weight))
		}
		if proto == "udp" {
			return
		}
		buffer := "-"
		if st := m.Strategies[lb]; st != nil && st.DataPath() == "userspace" {
			buffer = fmt.Sprint(max(lb.BufferSize, 0))
			if lb.BufferSize == 0 {
				buffer = fmt.Sprint(DefaultBufferSize)
			}
		}
		version := 0
		if lb.ProxyProtocol != nil {
			version = lb.ProxyProtocol.Version
		}
		td := lb.TerminationDelay.D(DefaultTerminationDelay)
		tds := td.String()
		switch {
		case td < 0:
			tds = "never"
		case td == 0:
			tds = "0s (close at once)"
		}
		fmt.Fprintf(w, "%s  strategy %s (buffer %s), PROXY header sent: %s, termination delay %s, dial timeout %s, try next server %t\n",
			indent, m.Strategies[lb].Name(), buffer, versionName(version), tds, lb.DialTimeout.D(DefaultDialTimeout), lb.TryNextServer)
	}
	for _, e := range m.EntryPoints {
		ep := e.Original
		proto, section := "tcp", c.TCP
		if e.UDP {
			proto, section = "udp", c.UDP
		}
		var opts []string
		if e.UDP {
			opts = append(opts, "session timeout "+ep.UDPTimeout.D(DefaultUDPTimeout).String())
		} else {
			opts = append(opts, "idle timeout "+orNever(ep.IdleTimeout.D(0)))
			if ep.MaxConns > 0 {
				opts = append(opts, fmt.Sprintf("at most %d connections", ep.MaxConns))
			}
			if len(e.Trusted) > 0 {
				var nets []string
				for _, p := range e.Trusted {
					nets = append(nets, p.String())
				}
				opts = append(opts, fmt.Sprintf("PROXY header required from %s (header timeout %s), others refused",
					strings.Join(nets, ", "), ep.ProxyProtocol.HeaderTimeout.D(DefaultHeaderTimeout)))
			}
		}
		fmt.Fprintf(w, "entrypoint %s: %s %s, %s\n", e.Name, proto, e.Address, strings.Join(opts, ", "))
		describe(section, proto, ep.Service, "  ")
	}
}

func versionName(v int) string {
	if v == 0 {
		return "none"
	}
	return fmt.Sprintf("v%d", v)
}

func orNever(d time.Duration) string {
	if d <= 0 {
		return "never"
	}
	return d.String()
}
