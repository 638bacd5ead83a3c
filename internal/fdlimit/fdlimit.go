// Package fdlimit helps tests count a process's fds and lower its fd
// limit to leave exactly the room they want.
package fdlimit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Count is how many fds process pid ("self" for this one) holds whose
// target starts with prefix ("pipe:", "socket:"; "" counts them all).
func Count(pid, prefix string) (int, error) {
	dir := "/proc/" + pid + "/fd/"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	if prefix == "" {
		return len(entries), nil
	}
	n := 0
	for _, e := range entries {
		if link, err := os.Readlink(dir + e.Name()); err == nil && strings.HasPrefix(link, prefix) {
			n++
		}
	}
	return n, nil
}

// Leaving is the RLIMIT_NOFILE under which process pid ("self" for this
// one) can open exactly free more fds. The kernel hands out the lowest
// free number below the limit, and a process may hold fds far above it
// (a CI runner leaks some into its children), so the limit is counted
// from the numbers in use, not from how many there are.
func Leaving(pid string, free int) (int, error) {
	entries, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		return 0, err
	}
	used := map[int]bool{}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			return 0, fmt.Errorf("fd %q: %w", e.Name(), err)
		}
		used[n] = true
	}
	limit := 0
	for ; free > 0; limit++ {
		if !used[limit] {
			free--
		}
	}
	return limit, nil
}
