package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/l4bench/l4bench/bench/place"
	"github.com/l4bench/l4bench/bench/report"
	"github.com/l4bench/l4bench/bench/target"
)

var (
	buildOnce sync.Once
	l4bench   string
	buildErr  error
)

// binary builds l4bench beside the tests' l4proxy: --net veth runs
// l4bench again inside the client's namespace, so it is tested as the
// binary a user runs.
func binary(t *testing.T) string {
	t.Helper()
	if err := place.Check(); err != nil {
		t.Skipf("--net veth cannot run here: %v (CI runs as root)", err)
	}
	buildOnce.Do(func() {
		l4bench = filepath.Join(filepath.Dir(target.L4ProxyPath), "l4bench")
		if out, err := exec.Command("go", "build", "-o", l4bench, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build l4bench: %v: %s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return l4bench
}

// leftFrom lists the namespaces and host links of the run with this PID.
func leftFrom(t *testing.T, pid int) []string {
	t.Helper()
	var left []string
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), place.Prefix+strconv.Itoa(pid)+"-") {
			left = append(left, e.Name())
		}
	}
	links, err := exec.Command("ip", "-o", "link", "show").Output()
	require.NoError(t, err)
	for _, line := range strings.Split(string(links), "\n") {
		if strings.Contains(line, "l4b"+strconv.Itoa(pid)) {
			left = append(left, line)
		}
	}
	return left
}

// A tiny run across veth: the records are there, the designs bound the
// run's own addresses in their namespace, the results say which path was
// measured, and nothing of the topology survives the run.
func TestVethRun(t *testing.T) {
	bin := binary(t)
	out := t.TempDir()
	cmd := exec.Command(bin, "run", "--net", "veth", "--mtu", "9000", "--profile", "quick", "--count", "1",
		"--target", "l4proxy-splice", "--scenario", "tcp-stream-1", "--scenario", "tcp-crr", "--out", out, "--format", "json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	var res report.Results
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &res))
	assert.Equal(t, "veth", res.Host.Net)
	assert.Equal(t, 9000, res.Host.MTU)
	for _, tg := range []string{"direct", "l4proxy-splice"} {
		assert.NotNil(t, res.Find("tcp-stream-1", tg, "throughput"), tg)
		assert.NotNil(t, res.Find("tcp-crr", tg, "conn_rate"), tg)
	}
	prefix := place.Prefix + strconv.Itoa(cmd.Process.Pid) + "-"
	for _, tg := range res.Targets {
		if tg.Name != "l4proxy-splice" {
			continue
		}
		assert.Equal(t, []string{"ip", "netns", "exec", prefix + "design"}, tg.Command[1:5], "the design ran in the design's namespace: %v", tg.Command)
		cfg, err := os.ReadFile(filepath.Join(filepath.Dir(findResults(t, out)), tg.Config))
		require.NoError(t, err)
		assert.Contains(t, string(cfg), "198.18.1.2:", "it listened on the design's address")
		assert.Contains(t, string(cfg), "198.18.2.2:", "its backends were in theirs")
	}
	report, err := os.ReadFile(filepath.Join(filepath.Dir(findResults(t, out)), "report.md"))
	require.NoError(t, err)
	assert.Contains(t, string(report), "| path measured | veth, MTU 9000")
	assert.Empty(t, leftFrom(t, cmd.Process.Pid), "no namespace or link survives the run")
}

func findResults(t *testing.T, out string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(out, "*", "results.json"))
	require.NoError(t, err)
	require.Len(t, m, 1)
	return m[0]
}

// A run killed outright leaves its namespaces; the next run removes them,
// says so, and leaves nothing of its own.
func TestVethKilledRunIsCleanedUpNextTime(t *testing.T) {
	bin := binary(t)
	killed := exec.Command(bin, "run", "--net", "veth", "--profile", "quick", "--count", "5",
		"--target", "l4proxy-splice", "--scenario", "tcp-stream-1", "--out", t.TempDir())
	require.NoError(t, killed.Start())
	design := "/run/netns/" + place.Prefix + strconv.Itoa(killed.Process.Pid) + "-design"
	require.Eventually(t, func() bool { _, err := os.Stat(design); return err == nil }, 20*time.Second, 20*time.Millisecond)
	time.Sleep(500 * time.Millisecond) // into its first samples
	require.NoError(t, killed.Process.Signal(syscall.SIGKILL))
	_ = killed.Wait()
	require.NotEmpty(t, leftFrom(t, killed.Process.Pid), "SIGKILL leaves the namespaces behind")

	next := exec.Command(bin, "run", "--net", "veth", "--profile", "quick", "--count", "1",
		"--target", "l4proxy-splice", "--scenario", "tcp-crr", "--out", t.TempDir(), "--format", "json")
	var stdout, stderr bytes.Buffer
	next.Stdout, next.Stderr = &stdout, &stderr
	require.NoError(t, next.Run(), stderr.String())
	assert.Contains(t, stderr.String(), "left by an earlier run that did not finish: "+place.Prefix+strconv.Itoa(killed.Process.Pid)+"-backends")
	var res report.Results
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &res))
	assert.Contains(t, strings.Join(res.Notes, "\n"), "left by an earlier run", "the results keep the note")
	assert.Empty(t, leftFrom(t, killed.Process.Pid), "the leftovers are gone")
	assert.Empty(t, leftFrom(t, next.Process.Pid), "and the second run left nothing")
}

// Bad --net, --mtu and --rate values are refused before anything is made,
// each naming the flag, the value and the fix.
func TestNetFlagsRefuseBadInput(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--net", "wifi"}, `--net: unknown path "wifi" (choices: loopback, veth)`},
		{[]string{"--mtu", "9000"}, "--mtu 9000: only with --net veth"},
		{[]string{"--rate", "10gbit"}, "--rate 10gbit: only with --net veth"},
		{[]string{"--net", "veth", "--mtu", "100"}, "--mtu 100: out of range (576 to 65535"},
		{[]string{"--net", "veth", "--rate", "fast"}, `--rate "fast": not a rate (tc syntax`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			out := t.TempDir()
			code := run(append([]string{"run", "--out", out}, tt.args...), &stdout, &stderr)
			assert.Equal(t, exitBadInput, code)
			assert.Contains(t, stderr.String(), tt.want)
			assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line")
			entries, _ := os.ReadDir(out)
			assert.Empty(t, entries, "nothing ran")
		})
	}
}
