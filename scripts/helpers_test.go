package scripts

import (
	"os/exec"
	"testing"
)

// needCheckout skips a test that runs git on this repository when the
// tests are short, git is missing, or this is not a checkout with a
// commit (a source tarball); why says what the test costs.
func needCheckout(t *testing.T, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip(why)
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	if err := exec.Command("git", "rev-parse", "--verify", "HEAD").Run(); err != nil {
		t.Skip("not a git checkout with a commit")
	}
}
