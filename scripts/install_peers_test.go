// Package scripts holds the tests of the shell scripts beside it. They run
// the real scripts with the package tools (dpkg-query, apt-get, id, sudo,
// pgrep) stubbed on PATH, so they change nothing on the machine.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stubs are small shell programs standing in for the package tools. They
// record each call in $STUB_CALLS; apt-get also records whether the
// policy-rc.d file existed while it ran, and "installs" by adding names
// to $STUB_STATE/installed.
var stubs = map[string]string{
	"dpkg-query": `#!/bin/sh
# dpkg-query -W -f='${Status}' NAME
for last; do :; done
if grep -qx "$last" "$STUB_STATE/installed" 2>/dev/null; then
  printf 'install ok installed'; exit 0
fi
echo "dpkg-query: no packages found matching $last" >&2; exit 1
`,
	"apt-get": `#!/bin/sh
echo "apt-get $*" >>"$STUB_CALLS"
if [ -e "$INSTALL_PEERS_POLICY" ]; then echo "policy: $(cat "$INSTALL_PEERS_POLICY" | tail -n 1)" >>"$STUB_CALLS"; else echo "policy: absent" >>"$STUB_CALLS"; fi
case "$1" in
update) exit 0 ;;
install)
  n=$(cat "$STUB_STATE/fails" 2>/dev/null || echo 0)
  if [ "$n" -gt 0 ]; then echo $((n - 1)) >"$STUB_STATE/fails"; echo "E: Unable to locate package" ; exit 100; fi
  shift
  for a; do case "$a" in -*) ;; *) echo "$a" >>"$STUB_STATE/installed" ;; esac; done
  exit 0 ;;
esac
exit 1
`,
	"id":    "#!/bin/sh\necho \"${STUB_UID:-0}\"\n",
	"pgrep": "#!/bin/sh\nexit 1\n",
	"sudo":  "#!/bin/sh\necho \"sudo $1\" >>\"$STUB_CALLS\"\nexec \"$@\"\n",
}

var allPeers = []string{"haproxy", "nginx", "libnginx-mod-stream", "socat", "iperf3", "strace"}

type setup struct {
	policy    bool     // policy-rc.d exists before the run (Debian's images)
	installed []string // packages dpkg-query reports as installed
	aptFails  int      // how many apt-get install calls fail first
	uid       string   // what id -u says
	sudo      bool     // a sudo is on PATH
}

type outcome struct {
	code          int
	stdout        string
	stderr        string
	calls         string
	policyAfter   bool
	policyContent string
}

const ownPolicy = "#!/bin/sh\n# the image's own policy\nexit 101\n"

func runInstall(t *testing.T, s setup, args ...string) outcome {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	state := filepath.Join(dir, "state")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	require.NoError(t, os.MkdirAll(state, 0o755))
	for name, body := range stubs {
		if name == "sudo" && !s.sudo {
			continue
		}
		require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755))
	}
	// The tools the script itself needs, and nothing else that could
	// shadow a stub: a PATH of links to the real ones.
	for _, tool := range []string{"grep", "cat", "tail", "tee", "chmod", "rm", "printf", "sh", "dirname"} {
		real, err := exec.LookPath(tool)
		require.NoError(t, err, "the test needs %s", tool)
		require.NoError(t, os.Symlink(real, filepath.Join(bin, tool)))
	}
	require.NoError(t, os.WriteFile(filepath.Join(state, "installed"), []byte(strings.Join(s.installed, "\n")+"\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(state, "fails"), []byte(strconv.Itoa(s.aptFails)+"\n"), 0o644))
	policy := filepath.Join(dir, "policy-rc.d")
	if s.policy {
		require.NoError(t, os.WriteFile(policy, []byte(ownPolicy), 0o755))
	}
	calls := filepath.Join(dir, "calls")
	uid := s.uid
	if uid == "" {
		uid = "0"
	}

	bash, err := exec.LookPath("bash")
	require.NoError(t, err)
	cmd := exec.Command(bash, append([]string{"install-peers.sh"}, args...)...)
	cmd.Env = []string{
		"PATH=" + bin,
		"HOME=" + dir,
		"STUB_STATE=" + state,
		"STUB_CALLS=" + calls,
		"STUB_UID=" + uid,
		"INSTALL_PEERS_POLICY=" + policy,
		"INSTALL_PEERS_LOG=" + filepath.Join(dir, "apt.log"),
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	o := outcome{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "running the script: %v", err)
		o.code = ee.ExitCode()
	}
	if b, err := os.ReadFile(calls); err == nil {
		o.calls = string(b)
	}
	if b, err := os.ReadFile(policy); err == nil {
		o.policyAfter, o.policyContent = true, string(b)
	}
	return o
}

// TestInstallPeers covers both states of policy-rc.d and of the packages.
// The first case is the bug a fresh Debian container image hit: the image
// ships a policy-rc.d, the packages are missing, the install works, and the
// script used to exit 1 from its EXIT trap.
func TestInstallPeers(t *testing.T) {
	cases := []struct {
		name  string
		setup setup
		args  []string
		check func(t *testing.T, o outcome)
	}{
		{
			name:  "policy present, packages missing",
			setup: setup{policy: true},
			check: func(t *testing.T, o outcome) {
				require.Equal(t, 0, o.code, "stderr: %s", o.stderr)
				assert.Contains(t, o.calls, "apt-get install -y --no-install-recommends "+strings.Join(allPeers, " "))
				assert.Contains(t, o.calls, "policy: exit 101", "apt-get must run under a policy that starts no service")
				assert.True(t, o.policyAfter, "the image's own policy-rc.d must be left in place")
				assert.Equal(t, ownPolicy, o.policyContent, "the image's own policy-rc.d must not be rewritten")
				assert.Contains(t, o.stdout, "install-peers: done")
			},
		},
		{
			name:  "policy absent, packages missing",
			setup: setup{},
			check: func(t *testing.T, o outcome) {
				require.Equal(t, 0, o.code, "stderr: %s", o.stderr)
				assert.Contains(t, o.calls, "apt-get install")
				assert.Contains(t, o.calls, "policy: exit 101", "the script's own policy must be in place during apt-get")
				assert.False(t, o.policyAfter, "the policy-rc.d the script made must be removed")
			},
		},
		{
			name:  "policy present, packages installed",
			setup: setup{policy: true, installed: allPeers},
			check: func(t *testing.T, o outcome) {
				require.Equal(t, 0, o.code, "stderr: %s", o.stderr)
				assert.Empty(t, o.calls, "nothing to install: apt-get must not run")
				assert.Equal(t, ownPolicy, o.policyContent)
				for _, p := range allPeers {
					assert.Contains(t, o.stdout, "install-peers: "+p+" already installed")
				}
			},
		},
		{
			name:  "policy absent, packages installed",
			setup: setup{installed: allPeers},
			check: func(t *testing.T, o outcome) {
				require.Equal(t, 0, o.code, "stderr: %s", o.stderr)
				assert.Empty(t, o.calls)
				assert.False(t, o.policyAfter, "no policy-rc.d may be left behind")
			},
		},
		{
			name:  "some installed: only the missing ones",
			setup: setup{policy: true, installed: []string{"haproxy", "nginx", "libnginx-mod-stream"}},
			check: func(t *testing.T, o outcome) {
				require.Equal(t, 0, o.code, "stderr: %s", o.stderr)
				assert.Contains(t, o.calls, "apt-get install -y --no-install-recommends socat iperf3 strace\n")
			},
		},
		{
			name:  "named packages only",
			setup: setup{policy: true},
			args:  []string{"strace"},
			check: func(t *testing.T, o outcome) {
				require.Equal(t, 0, o.code, "stderr: %s", o.stderr)
				assert.Contains(t, o.calls, "apt-get install -y --no-install-recommends strace\n")
			},
		},
		{
			name:  "stale package lists: update, then retry",
			setup: setup{policy: true, aptFails: 1},
			check: func(t *testing.T, o outcome) {
				require.Equal(t, 0, o.code, "stderr: %s", o.stderr)
				assert.Contains(t, o.calls, "apt-get update")
				assert.Equal(t, 2, strings.Count(o.calls, "apt-get install"))
				assert.Equal(t, ownPolicy, o.policyContent)
			},
		},
		{
			name:  "install fails, policy present: exit 1, policy kept",
			setup: setup{policy: true, aptFails: 2},
			check: func(t *testing.T, o outcome) {
				assert.Equal(t, 1, o.code)
				assert.Contains(t, o.stderr, "apt-get install haproxy nginx libnginx-mod-stream socat iperf3 strace failed")
				assert.Contains(t, o.stderr, "E: Unable to locate package", "the log's end is shown")
				assert.Equal(t, ownPolicy, o.policyContent)
			},
		},
		{
			name:  "install fails, policy absent: exit 1, own policy removed",
			setup: setup{aptFails: 2},
			check: func(t *testing.T, o outcome) {
				assert.Equal(t, 1, o.code)
				assert.False(t, o.policyAfter)
			},
		},
		{
			name:  "not root, no sudo: exit 1 naming the command",
			setup: setup{uid: "1000"},
			check: func(t *testing.T, o outcome) {
				assert.Equal(t, 1, o.code)
				assert.Contains(t, o.stderr, "need root to install")
				assert.Contains(t, o.stderr, "apt-get install -y haproxy")
				assert.Empty(t, o.calls)
			},
		},
		{
			name:  "not root, with sudo",
			setup: setup{uid: "1000", sudo: true},
			check: func(t *testing.T, o outcome) {
				require.Equal(t, 0, o.code, "stderr: %s", o.stderr)
				assert.Contains(t, o.calls, "sudo apt-get")
				assert.False(t, o.policyAfter)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, runInstall(t, tc.setup, tc.args...))
		})
	}
}
