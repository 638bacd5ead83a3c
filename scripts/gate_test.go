package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The gate runs no A/B when base and head build the same l4proxy byte for
// byte (a change to docs or tests alone), and says so; once head's code
// differs it goes on to the run (here it stops at the missing
// bin/l4bench, which a clone of the repository has not built).
func TestGateSkipsIdenticalBuilds(t *testing.T) {
	needCheckout(t, "builds l4proxy four times")
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	clone := filepath.Join(t.TempDir(), "clone")
	out, err := exec.Command("git", "clone", "--quiet", root, clone).CombinedOutput()
	require.NoError(t, err, "%s", out)
	// The scripts as they are here, committed or not.
	for _, f := range []string{"gate.sh", "gate-run.sh"} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(clone, "scripts", f), b, 0o755))
	}
	gate := func() (string, error) {
		cmd := exec.Command("scripts/gate.sh")
		cmd.Dir = clone
		cmd.Env = append(os.Environ(), "GATE_BASE=HEAD", "GATE_FORCE=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out2, err := gate()
	require.NoError(t, err, "%s", out2)
	assert.Contains(t, out2, "build the same l4proxy, byte for byte: no A/B to run")

	// A real change to the proxy's code: the builds differ.
	file := filepath.Join(clone, "proxy", "copy", "loop.go")
	src, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, append(src, []byte("\nfunc init() { println(\"head\") }\n")...), 0o644))
	out2, err = gate()
	require.Error(t, err)
	assert.NotContains(t, out2, "no A/B to run")
	assert.Contains(t, out2, "bin/l4bench is missing")
}
