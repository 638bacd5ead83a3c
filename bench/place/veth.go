package place

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
)

// The test subnets: 198.18.0.0/15 is set aside for benchmarking
// (RFC 2544) and never routed, and only the run's own namespaces hold
// addresses in it. Client and design share one /24, design and backends
// another; the design's namespace routes between them, so direct crosses
// the same two links as a proxied connection, with no proxy.
const (
	clientAddr      = "198.18.1.1"
	designFrontAddr = "198.18.1.2"
	designBackAddr  = "198.18.2.1"
	backendsAddr    = "198.18.2.2"
	// Prefix starts the name of every namespace the run makes:
	// l4b-<pid of the run>-client and so on.
	Prefix = "l4b-"
)

// TestNet is the range the namespaces' addresses come from.
const TestNet = "198.18.0.0/15"

var testNet = func() *net.IPNet {
	_, n, err := net.ParseCIDR(TestNet)
	if err != nil {
		panic(err)
	}
	return n
}()

// InTestNet says whether ip is in TestNet: an address only a run's own
// namespaces hold.
func InTestNet(ip net.IP) bool { return testNet.Contains(ip) }

// VethOptions shape the topology.
type VethOptions struct {
	// MTU of every veth link (default 1500).
	MTU int
	// Rate, when set, shapes the design's egress on both of its links
	// with tbf at this rate (tc syntax: 10gbit, 500mbit).
	Rate string
	// Owner is the PID the namespaces are named after (default: this
	// process), so that a later run knows whether their owner still runs.
	Owner int
	// Sysctls are written in every namespace (names as sysctl spells
	// them, net.ipv4.tcp_rmem): a new namespace starts from the kernel's
	// defaults, not from the host's settings.
	Sysctls map[string]string
}

// Veth is a run's three namespaces, joined by veth pairs:
// client <-> design <-> backends.
type Veth struct {
	Client, Design, Backends Place
	MTU                      int
	Rate                     string
	names                    []string
}

// Check says why --net veth cannot run here, with the fix, or nil.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("--net veth: needs root to make network namespaces (run as root, or use --net loopback)")
	}
	return need("ip", "--net veth")
}

// need says how to get a missing iproute2 command.
func need(tool, flag string) error {
	if _, err := exec.LookPath(tool); err != nil {
		return fmt.Errorf("%s: the %s command is missing (install Debian's iproute2 package: apt-get install iproute2)", flag, tool)
	}
	return nil
}

// SetupVeth makes the namespaces and links. On any failure it removes
// what it made and says which step failed.
func SetupVeth(o VethOptions) (*Veth, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if o.Rate != "" {
		if err := need("tc", "--rate"); err != nil {
			return nil, err
		}
	}
	if o.MTU == 0 {
		o.MTU = 1500
	}
	if o.Owner == 0 {
		o.Owner = os.Getpid()
	}
	base := Prefix + strconv.Itoa(o.Owner)
	ns := func(role string) string { return base + "-" + role }
	v := &Veth{
		Client:   Place{NetNS: ns("client"), Addr: clientAddr},
		Design:   Place{NetNS: ns("design"), Addr: designFrontAddr},
		Backends: Place{NetNS: ns("backends"), Addr: backendsAddr},
		MTU:      o.MTU, Rate: o.Rate,
	}
	// Link names: at most 15 bytes, unique on the host while both ends
	// are made there.
	link := func(s string) string { return "l4b" + strconv.Itoa(o.Owner) + s }
	cl, dc, db, bk := link("c"), link("dc"), link("db"), link("b")
	steps := [][]string{}
	for _, n := range []string{v.Client.NetNS, v.Design.NetNS, v.Backends.NetNS} {
		steps = append(steps, []string{"ip", "netns", "add", n})
		v.names = append(v.names, n)
		steps = append(steps, []string{"ip", "-n", n, "link", "set", "lo", "up"})
	}
	mtu := strconv.Itoa(o.MTU)
	steps = append(steps,
		[]string{"ip", "link", "add", cl, "mtu", mtu, "netns", v.Client.NetNS, "type", "veth", "peer", "name", dc, "mtu", mtu, "netns", v.Design.NetNS},
		[]string{"ip", "link", "add", db, "mtu", mtu, "netns", v.Design.NetNS, "type", "veth", "peer", "name", bk, "mtu", mtu, "netns", v.Backends.NetNS},
		[]string{"ip", "-n", v.Client.NetNS, "addr", "add", clientAddr + "/24", "dev", cl},
		[]string{"ip", "-n", v.Design.NetNS, "addr", "add", designFrontAddr + "/24", "dev", dc},
		[]string{"ip", "-n", v.Design.NetNS, "addr", "add", designBackAddr + "/24", "dev", db},
		[]string{"ip", "-n", v.Backends.NetNS, "addr", "add", backendsAddr + "/24", "dev", bk},
		[]string{"ip", "-n", v.Client.NetNS, "link", "set", cl, "up"},
		[]string{"ip", "-n", v.Design.NetNS, "link", "set", dc, "up"},
		[]string{"ip", "-n", v.Design.NetNS, "link", "set", db, "up"},
		[]string{"ip", "-n", v.Backends.NetNS, "link", "set", bk, "up"},
		[]string{"ip", "-n", v.Client.NetNS, "route", "add", "default", "via", designFrontAddr},
		[]string{"ip", "-n", v.Backends.NetNS, "route", "add", "default", "via", designBackAddr},
	)
	if o.Rate != "" {
		for _, dev := range []string{dc, db} {
			// A burst of 1 MiB and 50 ms of queue: enough for one
			// 64 KiB GSO segment at any rate tested here.
			steps = append(steps, []string{"tc", "-n", v.Design.NetNS, "qdisc", "add", "dev", dev, "root", "tbf", "rate", o.Rate, "burst", "1mb", "latency", "50ms"})
		}
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			_ = v.Close()
			return nil, fmt.Errorf("--net veth: %s: %v: %s", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	// The design's namespace routes direct's packets between its links.
	if err := v.Design.Do(func() error { return writeSysctl("net.ipv4.ip_forward", "1") }); err != nil {
		_ = v.Close()
		return nil, fmt.Errorf("--net veth: turn on forwarding in %s: %w", v.Design.NetNS, err)
	}
	names := make([]string, 0, len(o.Sysctls))
	for n := range o.Sysctls {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, pl := range []Place{v.Client, v.Design, v.Backends} {
		err := pl.Do(func() error {
			for _, n := range names {
				if err := writeSysctl(n, o.Sysctls[n]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			_ = v.Close()
			return nil, fmt.Errorf("--net veth: in %s: %w", pl.NetNS, err)
		}
	}
	return v, nil
}

// writeSysctl sets a sysctl of the calling thread's network namespace.
func writeSysctl(name, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set %s to %q: %w", name, value, err)
	}
	return nil
}

// Close removes the namespaces, and with them their links and qdiscs.
func (v *Veth) Close() error {
	var errs []error
	for _, n := range v.names {
		if !exists(n) {
			continue
		}
		if err := deleteNS(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Leftovers lists the namespaces of runs that no longer run: named
// l4b-<pid>-..., with no process <pid>.
func Leftovers() ([]string, error) {
	all, err := namespaces()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range all {
		rest, ok := strings.CutPrefix(n, Prefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil && pid != os.Getpid() {
			continue // its run is still going
		}
		out = append(out, n)
	}
	return out, nil
}

// RemoveLeftovers removes what killed runs left behind and says what it
// removed, for the run's notes.
func RemoveLeftovers() (string, error) {
	left, err := Leftovers()
	if err != nil || len(left) == 0 {
		return "", err
	}
	for _, n := range left {
		if err := deleteNS(n); err != nil {
			return "", fmt.Errorf("left by an earlier run: %w", err)
		}
	}
	return fmt.Sprintf("removed %d network namespace(s) left by an earlier run that did not finish: %s", len(left), strings.Join(left, ", ")), nil
}

// deleteNS removes a namespace, and with it its links and qdiscs.
func deleteNS(name string) error {
	if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
		return fmt.Errorf("remove namespace %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// namespaces lists the named network namespaces (ip netns list).
func namespaces() ([]string, error) {
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out, nil
}

func exists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}
