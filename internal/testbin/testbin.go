// Package testbin builds the l4proxy binary once for the tests of a
// package that starts it as a process:
//
//	func TestMain(m *testing.M) {
//		os.Exit(testbin.Run(m, func(path string) { target.L4ProxyPath = path }))
//	}
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// Run builds l4proxy into a temporary folder, hands its path to use, runs
// the tests, checks that no goroutine leaked, removes the folder and
// returns the exit code.
func Run(m *testing.M, use func(path string)) int {
	dir, err := os.MkdirTemp("", "l4proxy-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "l4proxy")
	out, err := exec.Command("go", "build", "-o", path, "github.com/l4bench/l4bench/cmd/l4proxy").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building l4proxy: %v\n%s", err, out)
		return 1
	}
	use(path)
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return code
}
