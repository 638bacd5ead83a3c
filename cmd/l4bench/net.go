package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"syscall"

	"github.com/l4bench/l4bench/bench/measure"
	"github.com/l4bench/l4bench/bench/place"
	"github.com/l4bench/l4bench/scenarios"
)

// envVeth carries the namespaces from the l4bench that made them to the
// l4bench it starts inside the client's namespace, which runs the
// scenarios: every load client of the run lives in the process, so the
// process itself is put in the client's place.
const envVeth = "L4BENCH_VETH"

// netFlags are run's --net, --mtu and --rate.
type netFlags struct {
	net  string
	mtu  int
	rate string
}

var rateSyntax = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(bit|kbit|mbit|gbit|tbit)$`)

// check refuses bad values with the flag, the value and the fix.
func (f netFlags) check() error {
	switch f.net {
	case "loopback":
		if f.mtu != 0 {
			return fmt.Errorf("--mtu %d: only with --net veth (loopback keeps its own MTU)", f.mtu)
		}
		if f.rate != "" {
			return fmt.Errorf("--rate %s: only with --net veth (it shapes the design's veth links)", f.rate)
		}
	case "veth":
		if f.mtu != 0 && (f.mtu < 576 || f.mtu > 65535) {
			return fmt.Errorf("--mtu %d: out of range (576 to 65535; 1500 is Ethernet's, 9000 jumbo frames)", f.mtu)
		}
		if f.rate != "" && !rateSyntax.MatchString(f.rate) {
			return fmt.Errorf("--rate %q: not a rate (tc syntax: a number and bit, kbit, mbit, gbit or tbit, e.g. 10gbit)", f.rate)
		}
	default:
		return fmt.Errorf("--net: unknown path %q (choices: loopback, veth)", f.net)
	}
	return nil
}

// vethHandoff is what the outer l4bench tells the inner one.
type vethHandoff struct {
	Veth  place.Veth `json:"veth"`
	Notes []string   `json:"notes,omitempty"`
}

// insideVeth reads the handoff when this process is the inner l4bench.
func insideVeth() (*vethHandoff, error) {
	v := os.Getenv(envVeth)
	if v == "" {
		return nil, nil
	}
	var h vethHandoff
	if err := json.Unmarshal([]byte(v), &h); err != nil {
		return nil, fmt.Errorf("%s: %w", envVeth, err)
	}
	return &h, nil
}

// runInVeth makes the namespaces, runs this same command line again
// inside the client's namespace, and removes the namespaces whatever
// happens to it: it ends, fails, or is interrupted (SIGINT and SIGTERM
// reach it, and it stops its designs). A killed outer l4bench takes the
// inner one with it (SIGTERM on the parent's death), and leaves the
// namespaces to the next run, which removes them with a note.
func runInVeth(ctx context.Context, f netFlags, args []string) error {
	if err := place.Check(); err != nil {
		return badInput(err)
	}
	var notes []string
	note, err := place.RemoveLeftovers()
	if err != nil {
		return badInput(fmt.Errorf("--net veth: %w", err))
	}
	if note != "" {
		notes = append(notes, note)
		fmt.Fprintln(os.Stderr, "l4bench: "+note)
	}
	v, err := place.SetupVeth(place.VethOptions{MTU: f.mtu, Rate: f.rate, Sysctls: vethSysctls()})
	if err != nil {
		return badInput(err)
	}
	defer func() {
		if err := v.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "l4bench: "+oneLine(err))
		}
	}()
	handoff, err := json.Marshal(vethHandoff{Veth: *v, Notes: notes})
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--net veth: find l4bench's own binary: %w", err)
	}
	argv := v.Client.Command(append([]string{self}, args...))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envVeth+"="+string(handoff))
	// The death signal follows the thread that started the child.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("--net veth: start l4bench in %s: %w", v.Client.NetNS, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err = <-done
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return &exitError{code: exit.ExitCode()} // the inner l4bench said why
	}
	return err
}

// vethSysctls are the host's network settings that change what is
// measured, for every namespace of the run, so that veth and loopback
// runs differ in their path and not in their buffers, backlog or port
// range. And TIME_WAIT reuse: the host reuses TIME_WAIT ports on loopback
// only (tcp_tw_reuse 2, Linux's default), so on veth tcp-crr's thousands
// of connections a second would use up the design's ports toward the
// backends, and the next scenario's connects would be reset (seen here in
// tcp-idle right after tcp-crr). 1 gives veth what loopback has.
func vethSysctls() map[string]string {
	s := measure.Sysctls()
	s["net.ipv4.tcp_tw_reuse"] = "1"
	return s
}

// useVeth puts the handoff into the run's options.
func (h *vethHandoff) use(opts *scenarios.Options) {
	v := h.Veth
	opts.Veth = &v
	opts.Notes = append(opts.Notes, h.Notes...)
}
