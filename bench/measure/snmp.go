package measure

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// NetCounters reads the kernel's network counters (/proc/net/snmp and
// /proc/net/netstat), keyed "Tcp.OutSegs", "TcpExt.DelayedACKs" and so
// on. They are the whole network namespace's, every process's packets
// included: take two samples around a load and compare designs run alike.
func NetCounters() (map[string]int64, error) {
	out := map[string]int64{}
	for _, path := range []string{"/proc/net/snmp", "/proc/net/netstat"} {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if err := parseNetCounters(string(b), out); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return out, nil
}

// parseNetCounters reads the file's pairs of lines, a header of names and
// a line of values, each beginning with the same "Proto:" (a value too
// large for int64 is skipped).
func parseNetCounters(text string, out map[string]int64) error {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines)%2 != 0 {
		return fmt.Errorf("%d lines, want pairs of header and values", len(lines))
	}
	for i := 0; i < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || len(names) != len(values) || names[0] != values[0] {
			return fmt.Errorf("line %d and %d do not pair: %q, %q", i+1, i+2, lines[i], lines[i+1])
		}
		proto := strings.TrimSuffix(names[0], ":")
		for j := 1; j < len(names); j++ {
			n, err := strconv.ParseInt(values[j], 10, 64)
			if err != nil {
				continue
			}
			out[proto+"."+names[j]] = n
		}
	}
	return nil
}
