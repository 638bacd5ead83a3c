// Package fdlimit helps tests lower a process's fd limit to leave exactly
// the room they want.
package fdlimit

import (
	"fmt"
	"os"
	"strconv"
)

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
