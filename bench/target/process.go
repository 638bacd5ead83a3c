package target

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/l4bench/l4bench/bench/measure"
	"github.com/l4bench/l4bench/bench/place"
	"github.com/l4bench/l4bench/internal/badinput"
	"github.com/l4bench/l4bench/internal/sockdiag"
)

// Instance is a running design.
type Instance struct {
	// Target is the target's name.
	Target string
	// Addrs maps each backend kind to the address clients connect to.
	Addrs map[string]string
	// Command is the exact command line, for the results.
	Command []string
	// Config is the path of the config file written for it ("" for none).
	Config string

	host  string      // what the entrypoints bind (Spec.listenHost)
	place place.Place // where its processes run (Spec.Place)
	procs []*proc
	logs  []*os.File
	wrap  []string
}

// proc is one started process with its single waiter: cmd.Wait runs in
// exactly one goroutine, and everything else learns of the exit through
// done, so no one reads ProcessState while Wait writes it.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait returned
	err  error         // cmd.Wait's result, valid after done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// PIDs returns the processes of the design: each started process and all
// its descendants (nginx workers, socat's per-connection children).
func (i *Instance) PIDs() []int {
	var out []int
	var walk func(int)
	walk = func(pid int) {
		out = append(out, pid)
		for _, c := range measure.Children(pid) {
			walk(c)
		}
	}
	for _, p := range i.procs {
		if !p.exited() {
			walk(p.cmd.Process.Pid)
		}
	}
	return out
}

// Exited says which of the design's started processes has exited, with
// its status and the end of its log, or nil while all of them run. A
// design that exits mid-run has died: Stop is the only way it ends.
func (i *Instance) Exited() error {
	for n, p := range i.procs {
		if p.exited() {
			return fmt.Errorf("%s (pid %d) exited: %v: %s", filepath.Base(p.cmd.Path), p.cmd.Process.Pid, p.err, tail(i.logs[n].Name(), 3))
		}
	}
	return nil
}

// Stop ends the design: SIGTERM to each process group, SIGKILL after 5s.
func (i *Instance) Stop() error {
	var errs []error
	for _, p := range i.procs {
		if p.exited() {
			continue
		}
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
			errs = append(errs, fmt.Errorf("%s did not stop within 5s of SIGTERM; killed", i.Target))
		}
	}
	for _, f := range i.logs {
		_ = f.Close()
	}
	return errors.Join(errs...)
}

// launch starts one process of a design in its own process group, with
// output to a log file in dir, pinned with taskset when cpus is set.
func (i *Instance) launch(dir, logName string, cpus string, env []string, argv ...string) error {
	if len(i.wrap) > 0 {
		argv = append(append([]string{}, i.wrap...), argv...)
	}
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	argv = i.place.Command(argv)
	log, err := os.Create(filepath.Join(dir, logName))
	if err != nil {
		return err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	i.procs = append(i.procs, p)
	i.logs = append(i.logs, log)
	if i.Command == nil {
		i.Command = append(append([]string{}, env...), argv...)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return nil
}

// waitListening waits until every address in Addrs has a listening (TCP)
// or bound (UDP) socket, read from /proc/net without connecting, so that
// readiness never touches the backends. If a process exits first, the
// error carries the end of its log.
func (i *Instance) waitListening(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		missing := ""
		for kind, addr := range i.Addrs {
			network := "tcp"
			if kind == UDP {
				network = "udp"
			}
			var ok bool
			// sock_diag answers for the namespace its socket is made in.
			err := i.place.Do(func() (err error) {
				ok, err = isListening(network, addr, i.socketInodes())
				return err
			})
			if err != nil {
				return fmt.Errorf("%s: readiness of %s: %w", i.Target, addr, err)
			}
			if !ok {
				missing = addr
				break
			}
		}
		if missing == "" {
			return nil
		}
		for n, p := range i.procs {
			if p.exited() {
				return fmt.Errorf("%s exited before listening on %s: %s", i.Target, missing, tail(i.logs[n].Name(), 3))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s after %s: %s", i.Target, missing, timeout, tail(i.logs[0].Name(), 3))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// isListening looks for a socket bound to addr, through sock_diag: TCP
// listening, UDP in any state, and owned by the design (its inode among
// the design's sockets), so that another process's socket on the same port
// never passes for the design's.
func isListening(network, addr string, owned map[string]bool) (bool, error) {
	_, port, err := splitHostPortNum(addr)
	if err != nil {
		return false, err
	}
	inodes, err := sockdiag.Bound(network, port)
	if err != nil {
		return false, err
	}
	for _, ino := range inodes {
		if owned[strconv.FormatUint(uint64(ino), 10)] {
			return true, nil
		}
	}
	return false, nil
}

// socketInodes are the inodes of the sockets the design's processes hold.
func (i *Instance) socketInodes() map[string]bool {
	out := map[string]bool{}
	for _, pid := range i.PIDs() {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		fds, _ := os.ReadDir(dir)
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(dir, fd.Name()))
			if err == nil && strings.HasPrefix(link, "socket:[") {
				out[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
			}
		}
	}
	return out
}

func splitHostPortNum(addr string) (string, int, error) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return "", 0, fmt.Errorf("%q has no port", addr)
	}
	p, err := strconv.Atoi(addr[i+1:])
	return addr[:i], p, err
}

// tail returns the last n lines of a file on one line.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil || len(bytes.TrimSpace(data)) == 0 {
		return "(no output; log " + path + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// start runs launch and waitListening, stopping the instance on failure.
func (i *Instance) started(err error) (*Instance, error) {
	if err == nil {
		err = i.waitListening(10 * time.Second)
	}
	if err != nil {
		_ = i.Stop()
		return nil, err
	}
	return i, nil
}

// peerBins are other binaries for the built-in peers (--peer-bin).
var peerBins = map[string]string{}

// Peers are the built-in peers whose binary --peer-bin can replace.
var Peers = []string{"haproxy", "nginx", "socat"}

// SetPeerBin points a built-in peer at another binary (l4bench run
// --peer-bin haproxy=PATH), for example a haproxy 3.x the user built.
func SetPeerBin(peer, path string) error {
	if !slices.Contains(Peers, peer) {
		return fmt.Errorf("unknown peer %q (choices: %s)", peer, strings.Join(Peers, ", "))
	}
	if !IsExecutable(path) {
		return fmt.Errorf("%s: %s is not an executable file", peer, path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	peerBins[peer] = abs
	return nil
}

// SetPeerBins applies --peer-bin NAME=PATH values; a bad one is bad
// input, naming the flag and the value.
func SetPeerBins(values []string) error {
	for _, v := range values {
		name, path, ok := strings.Cut(v, "=")
		if !ok || name == "" || path == "" {
			return badinput.Errorf("--peer-bin %q: want NAME=PATH, e.g. --peer-bin haproxy=/usr/local/sbin/haproxy", v)
		}
		if err := SetPeerBin(name, path); err != nil {
			return badinput.Errorf("--peer-bin %q: %v", v, err)
		}
	}
	return nil
}

// lookPath finds a peer's binary (the one --peer-bin gave, else the
// installed one) or says how to install it.
func lookPath(bin, pkg string) (string, error) {
	if p, ok := peerBins[bin]; ok {
		return p, nil
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, serr := os.Stat(filepath.Join(dir, bin)); serr == nil {
				return filepath.Join(dir, bin), nil
			}
		}
		return "", fmt.Errorf("%w; run scripts/install-peers.sh (Debian package %s)", ErrNotInstalled, pkg)
	}
	return p, nil
}

// versionOf runs a command and returns the first match of a pattern.
func versionOf(prefix string, argv ...string) string {
	out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if j := strings.Index(line, prefix); j >= 0 {
			f := strings.Fields(line[j+len(prefix):])
			if len(f) > 0 {
				return strings.TrimPrefix(f[0], "/")
			}
		}
	}
	return "unknown"
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }
