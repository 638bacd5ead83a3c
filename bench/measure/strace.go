// Package measure observes a design under test from outside its process:
// syscall profiles from strace, and CPU, memory and fd counts from /proc.
package measure

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// DataSyscalls are the syscalls that can carry payload bytes, traced by
// StraceArgs.
var DataSyscalls = []string{"splice", "read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg"}

// Verdicts of the data path.
const (
	VerdictSplice    = "splice"    // payload moved by splice(2); userspace moved under 5%
	VerdictUserspace = "userspace" // payload moved through read/write-like calls; splice under 5%
	VerdictMixed     = "mixed"     // both carried at least 5% of the payload
	VerdictNone      = "none"      // no payload seen
)

// MixedThreshold is the share of payload bytes that the minority path must
// reach for a verdict of mixed.
const MixedThreshold = 0.05

// StraceArgs returns the strace arguments (before the traced command) that
// trace the data syscalls of every thread into out, with no string payload.
func StraceArgs(out string, extra ...string) []string {
	args := []string{"-f", "-qq", "-s", "0", "-o", out, "-e", "trace=" + strings.Join(append(append([]string{}, DataSyscalls...), extra...), ",")}
	return args
}

// StracePath finds strace or says how to install it.
func StracePath() (string, error) {
	p, err := exec.LookPath("strace")
	if err != nil {
		return "", fmt.Errorf("strace not found: install it with 'apt-get install -y strace' (or run scripts/install-peers.sh)")
	}
	return p, nil
}

// Profile is what one strace output says about syscalls.
type Profile struct {
	Calls  map[string]int   `json:"calls"`
	Bytes  map[string]int64 `json:"bytes"`  // bytes returned by successful data calls
	Errors map[string]int   `json:"errors"` // calls that returned -1
}

var (
	// "123 read(5, ..." or "read(5, ..." (no -f), possibly "<unfinished ...>".
	startRe = regexp.MustCompile(`^(?:\[pid\s+)?(?:\d+\]?\s+)?([a-z_0-9]+)\(`)
	// "123 <... read resumed>..., 16384) = 16384"
	resumedRe = regexp.MustCompile(`<\.\.\. ([a-z_0-9]+) resumed>`)
	resultRe  = regexp.MustCompile(`\)\s+=\s+(-?\d+)`)
)

// ParseStraceFile parses the strace output file written with -o path.
func ParseStraceFile(path string) (*Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseStrace(f)
}

// ParseStrace reads strace -f output (one call per line, as written with
// -o) and counts calls, payload bytes and errors per syscall.
func ParseStrace(r io.Reader) (*Profile, error) {
	p := &Profile{Calls: map[string]int{}, Bytes: map[string]int64{}, Errors: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var name string
		if m := resumedRe.FindStringSubmatch(line); m != nil {
			name = m[1] // counted at its start line
		} else if m := startRe.FindStringSubmatch(line); m != nil {
			name = m[1]
			p.Calls[name]++
		} else {
			continue // signals, exits
		}
		if strings.HasSuffix(line, "<unfinished ...>") {
			continue
		}
		m := resultRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		if n < 0 {
			p.Errors[name]++
			continue
		}
		p.Bytes[name] += n
	}
	return p, sc.Err()
}

// SpliceBytes is the payload moved with splice: each byte is spliced
// twice (socket to pipe, pipe to socket), so half the spliced total.
func (p *Profile) SpliceBytes() int64 { return p.Bytes["splice"] / 2 }

// UserspaceBytes is the payload read into user space: the bytes returned
// by the receiving calls.
func (p *Profile) UserspaceBytes() int64 {
	return p.Bytes["read"] + p.Bytes["readv"] + p.Bytes["recvfrom"] + p.Bytes["recvmsg"]
}

// Verdict classifies the data path from the bytes each path carried.
func (p *Profile) Verdict() string {
	s, u := float64(p.SpliceBytes()), float64(p.UserspaceBytes())
	total := s + u
	switch {
	case total == 0:
		return VerdictNone
	case u/total < MixedThreshold:
		return VerdictSplice
	case s/total < MixedThreshold:
		return VerdictUserspace
	default:
		return VerdictMixed
	}
}

// String summarises the profile on one line.
func (p *Profile) String() string {
	names := make([]string, 0, len(p.Calls))
	for n := range p.Calls {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "verdict=%s spliced=%d userspace=%d", p.Verdict(), p.SpliceBytes(), p.UserspaceBytes())
	for _, n := range names {
		fmt.Fprintf(&b, " %s=%d", n, p.Calls[n])
	}
	return b.String()
}
