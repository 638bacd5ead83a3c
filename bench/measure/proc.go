package measure

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ticksPerSecond is USER_HZ, 100 on every Linux this runs on.
const ticksPerSecond = 100

// ProcStats is one sample of a process from /proc.
type ProcStats struct {
	CPUSeconds      float64 // utime + stime
	ChildCPUSeconds float64 // cutime + cstime: children already reaped
	// UserSeconds is the user-mode part of both (utime + cutime); the rest
	// was spent in the kernel on the process's behalf.
	UserSeconds float64
	RSSKiB      int64 // VmRSS
	PSSKiB      int64 // Pss from smaps_rollup (0 when unreadable)
	Threads     int
	FDs         int
}

// ReadProc samples one process. It reads only /proc, so it does not
// disturb the process.
func ReadProc(pid int) (ProcStats, error) {
	var s ProcStats
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name, which may hold spaces and parens.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 20 {
		return s, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)  // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64)  // field 15
	cutime, _ := strconv.ParseInt(f[13], 10, 64) // field 16
	cstime, _ := strconv.ParseInt(f[14], 10, 64) // field 17
	s.CPUSeconds = float64(utime+stime) / ticksPerSecond
	s.ChildCPUSeconds = float64(cutime+cstime) / ticksPerSecond
	s.UserSeconds = float64(utime+cutime) / ticksPerSecond
	s.Threads, _ = strconv.Atoi(f[17]) // field 20
	if status, err := readKeyed(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		s.RSSKiB = status["VmRSS"]
	}
	if smaps, err := readKeyed(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		s.PSSKiB = smaps["Pss"]
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.FDs = len(fds)
	}
	return s, nil
}

// SocketFDs counts the open socket fds of processes (pipes and files
// left out), the measure of a connection leak in designs that pool pipes.
func SocketFDs(pids []int) int {
	n := 0
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		fds, _ := os.ReadDir(dir)
		for _, fd := range fds {
			if link, err := os.Readlink(dir + "/" + fd.Name()); err == nil && strings.HasPrefix(link, "socket:") {
				n++
			}
		}
	}
	return n
}

// ReadProcs sums the samples of several processes (a design that forks).
func ReadProcs(pids []int) (ProcStats, error) {
	var sum ProcStats
	for _, pid := range pids {
		s, err := ReadProc(pid)
		if err != nil {
			return sum, err
		}
		sum.CPUSeconds += s.CPUSeconds
		sum.ChildCPUSeconds += s.ChildCPUSeconds
		sum.UserSeconds += s.UserSeconds
		sum.RSSKiB += s.RSSKiB
		sum.PSSKiB += s.PSSKiB
		sum.Threads += s.Threads
		sum.FDs += s.FDs
	}
	return sum, nil
}

// BusySeconds is the CPU time every CPU of the machine has spent on
// anything but idle and iowait since boot (/proc/stat's cpu line): taken
// twice, the whole machine's work in between, the interrupts and softirqs
// no process is billed for included.
func BusySeconds() (float64, error) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: field %d of %q: %w", i+2, line, err)
		}
		// user nice system idle iowait irq softirq steal guest
		// guest_nice: steal is another guest's time, and guest time is
		// already counted in user and nice.
		if i == 3 || i == 4 || i >= 7 {
			continue
		}
		busy += n
	}
	return float64(busy) / ticksPerSecond, nil
}

// Meminfo reads /proc/meminfo in KiB by key (Slab, SUnreclaim, ...).
func Meminfo() (map[string]int64, error) { return readKeyed("/proc/meminfo") }

// readKeyed parses "Key:   123 kB" lines.
func readKeyed(path string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		out[strings.TrimSpace(k)] = n
	}
	return out, sc.Err()
}

// Children lists the pids of a process's children (for designs that fork
// a process per connection, such as socat).
func Children(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}
