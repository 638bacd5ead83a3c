package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A new copy strategy is one file: a copy of buffered.go under another
// name, with nothing else changed, is run by the copier conformance test,
// the proxy's transfer and half-close tests and the strace proof of its
// data path, and l4bench lists it as a target. Run on a copy of this
// module, so the working tree is never touched.
func TestNewStrategyIsOneFile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and tests a copy of the module")
	}
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	mod := t.TempDir()
	for _, entry := range []string{"go.mod", "go.sum", "proxy", "bench", "scenarios", "cmd", "internal"} {
		out, err := exec.Command("cp", "-a", filepath.Join(root, entry), mod).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	src, err := os.ReadFile(filepath.Join(mod, "proxy/copy/buffered.go"))
	require.NoError(t, err)
	copycat := strings.NewReplacer("Buffered", "Copycat", "bufferedCopier", "copycatCopier", `"buffered"`, `"copycat"`).Replace(string(src))
	require.NotEqual(t, string(src), copycat)
	require.NoError(t, os.WriteFile(filepath.Join(mod, "proxy/copy/copycat.go"), []byte(copycat), 0o644))

	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = mod
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go %s:\n%s", strings.Join(args, " "), out)
		return string(out)
	}
	out := run("test", "-count=1", "-v", "-run", "TestCopier", "./proxy/copy")
	for _, test := range []string{"TestCopierChecksumsBothWays/copycat", "TestCopierHalfCloseBothOrders/copycat/client_first",
		"TestCopierReportsAReset/copycat", "TestCopierResumesAfterADeadline/copycat"} {
		assert.Contains(t, out, "--- PASS: "+test)
	}
	out = run("test", "-count=1", "-v", "-run", "TestTransferBothWays/copycat|TestHalfClose/copycat", "./proxy/tcp")
	assert.Contains(t, out, "--- PASS: TestTransferBothWays/copycat/1048576")
	assert.Contains(t, out, "--- PASS: TestHalfClose/copycat/client_first")
	out = run("test", "-count=1", "-v", "-run", "TestDataPathUnderStrace/copycat", "./cmd/l4proxy")
	assert.Contains(t, out, "--- PASS: TestDataPathUnderStrace/copycat")
	out = run("run", "./cmd/l4bench", "targets")
	assert.Contains(t, out, "l4proxy-copycat")
}
