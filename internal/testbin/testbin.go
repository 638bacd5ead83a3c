// Package testbin builds the l4proxy binary once for the tests of
// packages that start it as a design under test.
//
//	func TestMain(m *testing.M) { os.Exit(testbin.WithL4Proxy(m)) }
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/l4bench/l4bench/bench/target"
)

// WithL4Proxy builds l4proxy into a temporary folder, points
// target.L4ProxyPath at it, runs the tests, checks for leaked goroutines
// and returns the exit code.
func WithL4Proxy(m *testing.M) int {
	dir, err := os.MkdirTemp("", "l4proxy-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	target.L4ProxyPath = filepath.Join(dir, "l4proxy")
	out, err := exec.Command("go", "build", "-o", target.L4ProxyPath, "github.com/l4bench/l4bench/cmd/l4proxy").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building l4proxy: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return code
}
