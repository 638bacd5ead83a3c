package scripts

import (
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every planted regression still applies to the code and builds, so the
// gate's evidence can be made again after the code moves.
func TestPlantedRegressionsApply(t *testing.T) {
	needCheckout(t, "builds l4proxy six times")
	for _, what := range []string{"small-buffer", "no-splice", "slow-accept", "slow-loop-accept", "extra-fds", "aa"} {
		t.Run(what, func(t *testing.T) {
			cmd := exec.Command("./planted.sh", what, "1")
			cmd.Env = append(cmd.Environ(), "PLANTED_CHECK=1")
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			assert.Contains(t, string(out), "planted: "+what+" applies and builds")
		})
	}
	out, err := exec.Command("./planted.sh", "telepathy", "1").CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "unknown regression 'telepathy'")
}
