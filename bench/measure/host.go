package measure

import (
	"os"
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
