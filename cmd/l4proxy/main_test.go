package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/l4bench/l4bench/internal/testbin"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/l4bench/l4bench/bench/backend"
	"github.com/l4bench/l4bench/bench/measure"
	"github.com/l4bench/l4bench/internal/blackhole"
	"github.com/l4bench/l4bench/internal/fdlimit"
	zeroStream "github.com/l4bench/l4bench/internal/payload"
	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

var binary string

func TestMain(m *testing.M) {
	os.Exit(testbin.Run(m, func(path string) { binary = path }))
}

func TestBadInput(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("entryPoints:\n  web:\n    address: \"127.0.0.1:0\"\n    service: nope\n"), 0o644))

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no flags", nil, "--listen is required"},
		{"no backend", []string{"--listen", "127.0.0.1:0"}, "--backend is required"},
		{"unknown strategy", []string{"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--strategy", "zerocopy"},
			`--strategy: unknown strategy "zerocopy" (choices: ` + strings.Join(copystrat.Names(), ", ") + `)`},
		{"backend not host:port", []string{"--listen=127.0.0.1:0", "--backend=127.0.0.1:1,db"}, `--backend: "db" is not host:port`},
		{"proxy protocol range", []string{"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--proxy-protocol", "3"},
			`--proxy-protocol: invalid value "3" (choices: 0, 1, 2)`},
		{"proxy protocol with udp", []string{"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--udp", "--proxy-protocol=2"},
			"--proxy-protocol 2 cannot be used with --udp"},
		{"bad duration", []string{"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--termination-delay", "soon"},
			`--termination-delay: invalid duration "soon"`},
		{"max conns not a number", []string{"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--max-conns", "lots"},
			`--max-conns: invalid value "lots" (expected a whole number of connections, 0 for no cap)`},
		{"max conns negative", []string{"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--max-conns=-1"},
			`--max-conns: invalid value "-1"`},
		{"max conns with udp", []string{"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--udp", "--max-conns", "5"},
			"--max-conns applies to TCP only"},
		{"port in use", []string{"--listen", busy.Addr().String(), "--backend", "127.0.0.1:1"}, "address already in use"},
		{"unknown flag", []string{"--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--turbo"}, "unknown flag --turbo"},
		{"unreadable config", []string{"--config", "/nonexistent/l4proxy.yaml"}, "no such file or directory"},
		{"invalid config", []string{"--config", bad}, `bad.yaml:4: entryPoints.web.service: unknown service "nope"`},
		{"config and flags", []string{"--config", bad, "--listen", "127.0.0.1:0"}, "--listen cannot be combined with --config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(tt.args, &stderr)
			assert.Equal(t, exitBadInput, code)
			assert.Contains(t, stderr.String(), tt.want)
			assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line: %q", stderr.String())
		})
	}
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	assert.Equal(t, 0, run([]string{"--help"}, &stderr))
	for _, flag := range []string{"--listen", "--backend", "--strategy", "--udp", "--proxy-protocol", "--termination-delay",
		"--dial-timeout", "--idle-timeout", "--udp-timeout", "--shutdown-grace", "--config", "--try-next-server", "--max-conns"} {
		assert.Contains(t, stderr.String(), flag)
	}
}

// proc is an l4proxy process started for a test, possibly under strace.
type proc struct {
	cmd    *exec.Cmd
	addr   string
	pid    int
	stderr *bytes.Buffer // complete once logDone is closed
	logged chan struct{}
}

var (
	listenRe = regexp.MustCompile(`msg=listening .*address=(\S+)`)
	pidRe    = regexp.MustCompile(`msg=started pid=(\d+)`)
)

// startProxy runs l4proxy (under strace when straceOut is set) and waits
// for its listening and started lines.
func startProxy(t testing.TB, straceOut string, args ...string) *proc {
	t.Helper()
	var wrapper []string
	if straceOut != "" {
		path, err := measure.StracePath()
		require.NoError(t, err)
		wrapper = append([]string{path}, measure.StraceArgs(straceOut)...)
	}
	return startWrapped(t, wrapper, args...)
}

// startWrapped runs l4proxy under a wrapper command (strace, prlimit),
// which must exec it, and waits for its listening and started lines.
func startWrapped(t testing.TB, wrapper []string, args ...string) *proc {
	t.Helper()
	argv := append(append(append([]string(nil), wrapper...), binary), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	pipe, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, stderr: &bytes.Buffer{}, logged: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		defer close(p.logged)
		sc := bufio.NewScanner(pipe)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			p.stderr.WriteString(line + "\n")
			if m := listenRe.FindStringSubmatch(line); m != nil {
				p.addr = m[1]
			}
			if m := pidRe.FindStringSubmatch(line); m != nil && !signalled {
				p.pid, _ = strconv.Atoi(m[1])
				signalled = true
				close(ready)
			}
		}
		if !signalled {
			close(ready)
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("l4proxy did not start")
	}
	require.NotZero(t, p.pid, "l4proxy did not start: %s", p.stderr)
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
			<-p.logged
			_ = cmd.Wait()
		}
	})
	return p
}

// stop sends SIGTERM to l4proxy itself and returns its exit code.
func (p *proc) stop(t testing.TB) int {
	t.Helper()
	require.NoError(t, syscall.Kill(p.pid, syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { <-p.logged; done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("l4proxy did not exit after SIGTERM")
	}
	return p.cmd.ProcessState.ExitCode()
}

// TestDataPathUnderStrace proves each registered strategy's declared data
// path from outside the process: a splice strategy moves the payload with
// splice(2) and next to nothing through user space, also with every
// feature that could wrap its conns; a userspace one never calls splice.
func TestDataPathUnderStrace(t *testing.T) {
	if _, err := measure.StracePath(); err != nil {
		t.Fatal(err)
	}
	const payload = 32 << 20
	type dataPathCase struct {
		strategy string
		s        copystrat.Strategy
		extra    []string
		verdict  string
		header   bool // the client sends a PROXY v1 header first
	}
	var tests []dataPathCase
	for _, name := range copystrat.Names() {
		s, err := copystrat.Lookup(name)
		require.NoError(t, err)
		require.Contains(t, []string{measure.VerdictSplice, measure.VerdictUserspace}, s.DataPath(),
			"strategy %s declares a data path strace can check", name)
		tests = append(tests, dataPathCase{name, s, nil, s.DataPath(), false})
		if s.DataPath() == copystrat.DataPathSplice {
			tests = append(tests,
				dataPathCase{name, s, []string{"--proxy-protocol", "2"}, s.DataPath(), false},
				dataPathCase{name, s, []string{"--idle-timeout", "1s", "--termination-delay", "50ms"}, s.DataPath(), false},
				dataPathCase{name, s, []string{"--accept-proxy-from", "127.0.0.0/8", "--proxy-protocol", "1"}, s.DataPath(), true})
		}
	}
	for _, tt := range tests {
		t.Run(strings.Join(append([]string{tt.strategy}, tt.extra...), " "), func(t *testing.T) {
			sink, err := backend.Start(backend.Sink, "127.0.0.1:0", false, 0)
			require.NoError(t, err)
			defer sink.Close()
			out := filepath.Join(t.TempDir(), "strace.out")
			args := append([]string{"--listen", "127.0.0.1:0", "--backend", sink.Addr(), "--strategy", tt.strategy}, tt.extra...)
			straceBin, err := measure.StracePath()
			require.NoError(t, err)
			// fcntl tells the two accept paths apart: the hand-over
			// duplicates the descriptors Go's accept and dial made
			// (F_DUPFD_CLOEXEC); on the native path Go made none.
			p := startWrapped(t, append([]string{straceBin}, measure.StraceArgs(out, "fcntl")...), args...)
			c, err := net.Dial("tcp", p.addr)
			require.NoError(t, err)
			if tt.header {
				_, err = c.Write([]byte("PROXY TCP4 192.0.2.1 192.0.2.2 123 5678\r\n"))
				require.NoError(t, err)
			}
			_, err = io.Copy(c, io.LimitReader(zeroStream.Zeros{}, payload))
			require.NoError(t, err)
			require.NoError(t, c.(*net.TCPConn).CloseWrite())
			_, _ = io.Copy(io.Discard, c)
			_ = c.Close()
			// The sink also counts a PROXY header when one is sent.
			require.Eventually(t, func() bool { return sink.Received() >= payload }, 10*time.Second, 10*time.Millisecond)
			assert.Equal(t, 0, p.stop(t))

			prof := straceProfile(t, out)
			assert.Equal(t, tt.verdict, prof.Verdict())
			if _, connector := tt.s.(copystrat.Connector); connector {
				trace, err := os.ReadFile(out)
				require.NoError(t, err)
				dups := strings.Count(string(trace), "F_DUPFD_CLOEXEC")
				if tt.header {
					assert.Equal(t, 2, dups, "a PROXY header to read: Go accepts and dials, the loop takes both over")
				} else {
					assert.Zero(t, dups, "the native path: the loop accepted and connected")
				}
			}
			if tt.verdict == measure.VerdictSplice {
				// All but what arrived in the same read as a PROXY header,
				// and (loopsplice) the reads before one filled its buffer.
				assert.GreaterOrEqual(t, prof.SpliceBytes()+prof.UserspaceBytes(), int64(payload-512), "the payload crossed")
				assert.Less(t, prof.UserspaceBytes(), int64(payload/100), "under 1% through user space, the rest spliced")
			} else {
				assert.Zero(t, prof.Calls["splice"], "no splice call at all")
				assert.GreaterOrEqual(t, prof.UserspaceBytes(), int64(payload))
			}
		})
	}
}

func TestSIGTERMDrainsThenExitsZero(t *testing.T) {
	echo, err := backend.Start(backend.Echo, "127.0.0.1:0", false, 0)
	require.NoError(t, err)
	defer echo.Close()
	p := startProxy(t, "", "--listen", "127.0.0.1:0", "--backend", echo.Addr(), "--shutdown-grace", "5s")
	c, err := net.Dial("tcp", p.addr)
	require.NoError(t, err)
	defer c.Close()
	// One round trip first, so the connection has been accepted (one still
	// in the listen queue is reset when the listener closes).
	buf := make([]byte, 1)
	_, err = c.Write([]byte("a"))
	require.NoError(t, err)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(p.pid, syscall.SIGTERM))
	time.Sleep(200 * time.Millisecond)
	// The listener is closed at once, the open connection still works.
	_, err = net.DialTimeout("tcp", p.addr, time.Second)
	assert.Error(t, err, "new connections refused during the drain")
	_, err = c.Write([]byte("b"))
	require.NoError(t, err)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	assert.Equal(t, "b", string(buf))
	require.NoError(t, c.Close())
	done := make(chan error, 1)
	go func() { <-p.logged; done <- p.cmd.Wait() }()
	select {
	case <-done:
		assert.Equal(t, 0, p.cmd.ProcessState.ExitCode())
	case <-time.After(4 * time.Second):
		t.Fatal("l4proxy did not exit once its last connection closed")
	}
}

func TestGraceRunsOut(t *testing.T) {
	echo, err := backend.Start(backend.Echo, "127.0.0.1:0", false, 0)
	require.NoError(t, err)
	defer echo.Close()
	p := startProxy(t, "", "--listen", "127.0.0.1:0", "--backend", echo.Addr(), "--shutdown-grace", "300ms")
	c, err := net.Dial("tcp", p.addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("a"))
	require.NoError(t, err)
	_, err = io.ReadFull(c, make([]byte, 1)) // accepted and forwarded
	require.NoError(t, err)
	start := time.Now()
	assert.Equal(t, 0, p.stop(t))
	assert.Less(t, time.Since(start), 3*time.Second)
	assert.Contains(t, p.stderr.String(), "grace period ended")
}

// TestShutdownCancelsDialInFlight: a client waits on a dial to a backend
// that never answers (a full accept queue drops the SYNs). The dial
// timeout (30s) is far past the grace (500ms): the process must still exit
// within grace + 1s, and the waiting client must be closed.
func TestShutdownCancelsDialInFlight(t *testing.T) {
	bh, err := blackhole.Listen()
	require.NoError(t, err)
	defer bh.Close()
	const grace = 500 * time.Millisecond
	for _, strategy := range copystrat.Names() {
		t.Run(strategy, func(t *testing.T) {
			p := startProxy(t, "", "--listen", "127.0.0.1:0", "--backend", bh.Addr(), "--strategy", strategy,
				"--dial-timeout", "30s", "--shutdown-grace", grace.String(), "--log-level", "debug")
			c, err := net.Dial("tcp", p.addr)
			require.NoError(t, err)
			defer c.Close()
			_, err = c.Write([]byte("hello"))
			require.NoError(t, err)
			time.Sleep(200 * time.Millisecond) // accepted, dial under way
			start := time.Now()
			assert.Equal(t, 0, p.stop(t))
			assert.Less(t, time.Since(start), grace+time.Second, "l4proxy waited on its dial past the grace")
			assert.NotErrorIs(t, readEndWithin(c, time.Second), os.ErrDeadlineExceeded, "the waiting client was left open")
		})
	}
}

// readEndWithin reads until the connection ends or d passes.
func readEndWithin(c net.Conn, d time.Duration) error {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	if err == nil {
		return io.EOF
	}
	return err
}

// TestFDExhaustionKeepsListener runs l4proxy with a file-descriptor limit
// of 48, exhausts it with held connections, and checks that the proxy
// kept its listener: once the clients let go, a new connection is served.
func TestFDExhaustionKeepsListener(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Fatalf("prlimit (util-linux) is needed to lower l4proxy's fd limit: %v", err)
	}
	echo, err := backend.Start(backend.Echo, "127.0.0.1:0", false, 0)
	require.NoError(t, err)
	defer echo.Close()
	for _, strategy := range copystrat.Names() {
		t.Run(strategy, func(t *testing.T) {
			p := startWrapped(t, []string{prlimit, "--nofile=48:48", "--"},
				"--listen", "127.0.0.1:0", "--backend", echo.Addr(), "--strategy", strategy)
			roundTrip := func(c net.Conn) error { return echoRoundTrip(c, 1, 2*time.Second) }
			var held []net.Conn
			failed := 0
			for range 60 {
				c, err := net.DialTimeout("tcp", p.addr, time.Second)
				if err != nil {
					failed++
					continue
				}
				held = append(held, c)
				if roundTrip(c) != nil {
					failed++
				}
			}
			require.NotZero(t, failed, "60 connections under a limit of 48 fds never ran out: the test did not exhaust anything")
			for _, c := range held {
				_ = c.Close()
			}
			require.Eventually(t, func() bool {
				c, err := net.DialTimeout("tcp", p.addr, time.Second)
				if err != nil {
					return false
				}
				defer c.Close()
				return roundTrip(c) == nil
			}, 10*time.Second, 100*time.Millisecond, "l4proxy did not recover once fds were free:\n%s", p.stderr)
			assert.Equal(t, 0, p.stop(t))
			assert.Contains(t, p.stderr.String(), "too many open files", "exhaustion is logged")
		})
	}
}

// TestSpliceFallbackIsVisible: near its fd limit, l4proxy-splice cannot
// make a pipe for every direction. Go would then copy through user space
// without a word; l4proxy must say so (a warn line with a running count),
// still forward every byte, and strace must show the mixed data path.
//
// The limit is set on the running process, from the fds it holds, so that
// the next connection's two sockets fit and its pipe does not: a fixed
// limit given at start would depend on how many fds the process happens to
// open first, and could make accept fail instead.
func TestSpliceFallbackIsVisible(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	require.NoError(t, err, "prlimit (util-linux) is needed to lower l4proxy's fd limit")
	straceBin, err := measure.StracePath()
	require.NoError(t, err)
	echo, err := backend.Start(backend.Echo, "127.0.0.1:0", false, 0)
	require.NoError(t, err)
	defer echo.Close()
	out := filepath.Join(t.TempDir(), "strace.out")
	wrapper := append([]string{straceBin}, measure.StraceArgs(out)...)
	p := startWrapped(t, wrapper, "--listen", "127.0.0.1:0", "--backend", echo.Addr(), "--strategy", "splice")

	var held []net.Conn
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	// One spliced connection first, so that what the runtime opens lazily
	// (pipes, the poller) is open before the fds are counted.
	c, err := net.DialTimeout("tcp", p.addr, time.Second)
	require.NoError(t, err)
	held = append(held, c)
	require.NoError(t, echoRoundTrip(c, 1, 5*time.Second))

	fellBack := func() bool { return strings.Contains(p.stderr.String(), "splice: no pipe can be made") }
	for try := 0; try < 3 && !fellBack(); try++ {
		// Room for the accepted socket and the backend socket, one fd short of a pipe.
		limit, err := fdlimit.Leaving(strconv.Itoa(p.pid), 3)
		require.NoError(t, err)
		msg, err := exec.Command(prlimit, "--pid", strconv.Itoa(p.pid), fmt.Sprintf("--nofile=%d:", limit)).CombinedOutput()
		require.NoError(t, err, "try %d, limit %d: prlimit: %s", try, limit, msg)
		time.Sleep(1100 * time.Millisecond) // l4proxy reads its limit at most once a second
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		require.NoError(t, err)
		held = append(held, c)
		require.NoError(t, echoRoundTrip(c, 1, 5*time.Second), "the connection under the limit is not served:\n%s", p.stderr)
		time.Sleep(50 * time.Millisecond) // the warn line is written
	}
	require.True(t, fellBack(), "no fallback was logged with the fd limit one short of a pipe:\n%s", p.stderr)
	// Every held connection, the one that fell back included, forwards.
	for i, c := range held {
		require.NoError(t, echoRoundTrip(c, 2<<20, 5*time.Second), "connection %d", i)
	}
	for _, c := range held {
		_ = c.Close()
	}
	held = nil
	assert.Equal(t, 0, p.stop(t))
	assert.Regexp(t, `splice_fallbacks_total=[12]\b`, p.stderr.String())

	prof := straceProfile(t, out)
	assert.Equal(t, measure.VerdictMixed, prof.Verdict())
}

// straceProfile parses the strace output file out and logs the profile.
func straceProfile(t *testing.T, out string) *measure.Profile {
	t.Helper()
	prof, err := measure.ParseStraceFile(out)
	require.NoError(t, err)
	t.Log(prof)
	return prof
}

// echoRoundTrip writes n bytes to c and reads them back from the echo
// behind the proxy, within the given time.
func echoRoundTrip(c net.Conn, n int, within time.Duration) error {
	msg := bytes.Repeat([]byte{'x'}, n)
	errc := make(chan error, 1)
	go func() { _, err := c.Write(msg); errc <- err }()
	_ = c.SetReadDeadline(time.Now().Add(within))
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if err := <-errc; err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return errors.New("echo differs")
	}
	return nil
}

// --version names the build; --check validates, prints the resolved
// routes and exits 0, or 2 for a bad configuration, without listening.
func TestVersionAndCheck(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	good := filepath.Join(t.TempDir(), "good.yaml")
	require.NoError(t, os.WriteFile(good, []byte("entryPoints:\n  web:\n    address: \""+busy.Addr().String()+"\"\n    service: app\n"+
		"tcp:\n  services:\n    app:\n      loadBalancer:\n        strategy: buffered\n        servers: [{address: \"127.0.0.1:9\", weight: 3}]\n"), 0o644))
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("entryPoints:\n  web:\n    address: \"127.0.0.1:0\"\n    service: nope\n"), 0o644))
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"version", []string{"--version"}, 0, []string{"l4proxy github.com/l4bench/l4bench", "go1."}},
		{"check a good config (its port may be taken: nothing listens)", []string{"--check", "--config", good}, 0,
			[]string{"entrypoint web: tcp " + busy.Addr().String(), "127.0.0.1:9 weight 3", "strategy buffered (buffer 16384)",
				"termination delay 100ms, dial timeout 5s", "configuration is valid"}},
		{"check flags", []string{"--check", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9", "--termination-delay", "-1s"}, 0,
			[]string{"strategy splice (buffer -)", "termination delay never"}},
		{"check a bad config", []string{"--check", "--config", bad}, 2, []string{`unknown service "nope"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			assert.Equal(t, tt.code, runTo(tt.args, &out, &out))
			for _, w := range tt.want {
				assert.Contains(t, out.String(), w)
			}
		})
	}
	// The binary make build stamps says its revision.
	out, err := exec.Command(binary, "--version").Output()
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(out), "l4proxy "), "%s", out)
}
