package measure

import (
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Kernel is the running kernel's release, "" when unknown.
func Kernel() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// CPUModel is the first CPU's model name from /proc/cpuinfo, "" when
// unknown.
func CPUModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// FDLimit is this process's hard limit on open files: the most a run can
// raise its own soft limit to without CAP_SYS_RESOURCE.
func FDLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	return lim.Max
}

// NetSysctls are the network settings that change what a proxy benchmark
// measures (buffer sizes, accept queue, ephemeral ports, congestion
// control), as /proc/sys names them.
var NetSysctls = []string{
	"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.core.somaxconn",
	"net.ipv4.ip_local_port_range", "net.ipv4.tcp_congestion_control", "net.ipv4.tcp_tw_reuse",
}

// Sysctls reads NetSysctls; unreadable ones are left out.
func Sysctls() map[string]string {
	out := map[string]string{}
	for _, name := range NetSysctls {
		data, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
		if err == nil {
			out[name] = strings.Join(strings.Fields(string(data)), " ")
		}
	}
	return out
}

// CPUGovernor is cpu0's frequency governor, "" where the machine exposes
// none (as in many VMs).
func CPUGovernor() string {
	data, err := os.ReadFile("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// MTU is a network interface's MTU, or 0 when it cannot be read.
func MTU(iface string) int {
	data, err := os.ReadFile("/sys/class/net/" + iface + "/mtu")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return n
}
