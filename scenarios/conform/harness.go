// The harness a case runs in: the design in front of the backend the
// case needs, statuses, and helpers that cases of several groups share.

package conform

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/l4bench/l4bench/bench/backend"
	"github.com/l4bench/l4bench/bench/measure"
	"github.com/l4bench/l4bench/bench/target"
	"github.com/l4bench/l4bench/internal/payload"
)

// Status is a case's verdict on one design.
type Status string

// The statuses, as results.json spells them.
const (
	Pass    Status = "pass"
	Lenient Status = "lenient" // an allowed divergence, recorded with what was seen
	Fail    Status = "fail"
	NA      Status = "n/a" // the design lacks the feature
)

// HalfClose is the half-close timeout every design gets, above the
// longest wait after a FIN in any case (2 s).
const HalfClose = 5 * time.Second

// Case is one catalogue row (docs/conformance.md).
type Case struct {
	Name  string
	Group string // the catalogue's group, A to G
	// WaitBound cases spend their time waiting on timeouts and pauses,
	// with little traffic and coarse limits (±1 s): they run on every
	// design at once to keep the matrix short. Cases that move bulk data,
	// count milliseconds or race a reset run one design at a time.
	WaitBound bool
	// Limit raises the 60 s cap of a case (one that restarts the design
	// many times); zero keeps it.
	Limit time.Duration
	// Run acts as the client of a design that h starts in front of the
	// backend the case needs. It returns the status and what was seen.
	Run func(ctx context.Context, h *Harness) (Status, string)
}

// Harness gives a case its design and backend.
type Harness struct {
	target target.Target
	dir    string
	inst   *target.Instance
	ln     net.Listener
	pc     net.PacketConn
	wg     sync.WaitGroup
	// AcceptDelay makes the backend wait before each accept().
	AcceptDelay time.Duration
	// ProxyProtocol asks the design to send PROXY headers of this version.
	ProxyProtocol int
	// ResendProxy asks the design to send PROXY headers, v2 where it
	// can, else v1 (the version used is in ResentVersion after Start).
	ResendProxy   bool
	ResentVersion int
	// AcceptProxy makes the design require PROXY headers from the client,
	// waiting at most HeaderTimeout for one.
	AcceptProxy   bool
	HeaderTimeout time.Duration
	// RequireProxy: the case needs the header to be mandatory, not just
	// accepted (n/a on designs where it is optional).
	RequireProxy bool
	// IdleTimeout and ConnectTimeout are set alike on every design.
	IdleTimeout    time.Duration
	ConnectTimeout time.Duration
	// HalfClose overrides the half-close timeout of every design (0:
	// the matrix's HalfClose).
	HalfClose time.Duration
	// Extra are arguments for l4proxy designs only (--shutdown-grace).
	Extra []string
	root  string // the case's folder, under which Restart makes its own
	// Wildcard makes the design listen on 0.0.0.0, IPv6 on ::1.
	Wildcard bool
	IPv6     bool
}

// spec is what every design is asked for, with the harness's settings.
func (h *Harness) spec(backends map[string]string) target.Spec {
	halfClose := HalfClose
	if h.HalfClose > 0 {
		halfClose = h.HalfClose
	}
	return target.Spec{Dir: h.dir, Backends: backends, HalfClose: halfClose, ProxyProtocol: h.ProxyProtocol, Extra: h.Extra,
		AcceptProxy: h.AcceptProxy, HeaderTimeout: h.HeaderTimeout, IdleTimeout: h.IdleTimeout, ConnectTimeout: h.ConnectTimeout,
		Wildcard: h.Wildcard, IPv6: h.IPv6}
}

// Start runs handle for every connection the backend accepts and starts
// the design in front of it; it returns the design's address.
func (h *Harness) Start(handle func(c *net.TCPConn)) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	h.ln = ln
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			time.Sleep(h.AcceptDelay)
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	return h.startDesign(ln.Addr().String())
}

// StartUDP runs handle for every datagram the UDP backend receives and
// starts the design in front of it; it returns the design's UDP address,
// or "" with the reason when the design does not forward UDP.
func (h *Harness) StartUDP(handle func(pc net.PacketConn, data []byte, from net.Addr)) (string, string, error) {
	backend := "127.0.0.1:0"
	if h.IPv6 {
		backend = "[::1]:0"
	}
	pc, err := net.ListenPacket("udp", backend)
	if err != nil {
		return "", "", err
	}
	h.pc = pc
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			handle(pc, append([]byte(nil), buf[:n]...), from)
		}
	}()
	return h.StartUDPTo(pc.LocalAddr().String())
}

// StartUDPTo starts the design in front of a given UDP backend address
// (for a backend that is not there yet).
func (h *Harness) StartUDPTo(backend string) (string, string, error) {
	spec := h.spec(map[string]string{target.UDP: backend})
	if _, why := h.lacks(spec); why != "" {
		return "", why, nil
	}
	inst, err := h.target.Start(spec)
	if err != nil {
		return "", "", err
	}
	h.inst = inst
	return inst.Addrs[target.UDP], "", nil
}

// lacks names the first feature spec (and, when the case requires it, a
// refusal of clients without a PROXY header) asks of the design that it
// declares it lacks, and why; "" when it has them all.
func (h *Harness) lacks(spec target.Spec) (target.Feature, string) {
	lacks := target.SupportOf(h.target).Lacks
	needs := spec.Needs()
	if h.RequireProxy {
		needs = append(needs, target.FeatureRequireProxy)
	}
	for _, f := range needs {
		if why, ok := lacks[f]; ok {
			return f, why
		}
	}
	return "", ""
}

// FDs counts the open socket fds of the design's processes (-1 when
// unknown). Only sockets: Go's runtime and haproxy keep splice pipes in a
// pool sized by past concurrency and freed later (Go: at garbage
// collection), which is not a connection leak; the catalogue's teardown
// and leak rules are about sockets left open.
func (h *Harness) FDs() int {
	if h.inst == nil || len(h.inst.PIDs()) == 0 {
		return -1
	}
	return measure.SocketFDs(h.inst.PIDs())
}

// StartTo starts the design in front of a given backend address (for a
// backend that refuses).
func (h *Harness) StartTo(addr string) (string, error) { return h.startDesign(addr) }

// Restart stops the design and starts it again with the harness's
// current settings, in front of the same TCP backend; its config goes
// into the subfolder sub.
func (h *Harness) Restart(sub string) (string, error) {
	if h.inst != nil {
		_ = h.inst.Stop()
		h.inst = nil
	}
	if h.root == "" {
		h.root = h.dir
	}
	h.dir = filepath.Join(h.root, sub)
	if err := os.MkdirAll(h.dir, 0o755); err != nil {
		return "", err
	}
	return h.startDesign(h.ln.Addr().String())
}

// sub is a harness for the same design with its configs in a subfolder.
func (h *Harness) sub(name string) (*Harness, error) {
	dir := filepath.Join(h.dir, name)
	return &Harness{target: h.target, dir: dir}, os.MkdirAll(dir, 0o755)
}

func (h *Harness) startDesign(backendAddr string) (string, error) {
	versions := []int{h.ProxyProtocol}
	if h.ResendProxy {
		versions = []int{2, 1}
	}
	for i, v := range versions {
		h.ProxyProtocol = v
		spec := h.spec(map[string]string{backend.Echo: backendAddr})
		if f, why := h.lacks(spec); why != "" {
			if i+1 < len(versions) && (f == target.FeatureSendProxyV1 || f == target.FeatureSendProxyV2) {
				continue // re-send the header in the version it can
			}
			return "", &notApplicable{why}
		}
		inst, err := h.target.Start(spec)
		if err != nil {
			return "", err
		}
		h.inst = inst
		h.ResentVersion = v
		return inst.Addrs[backend.Echo], nil
	}
	return "", &notApplicable{"design cannot send PROXY headers"}
}

func (h *Harness) close() {
	if h.inst != nil {
		_ = h.inst.Stop()
	}
	if h.ln != nil {
		_ = h.ln.Close()
	}
	if h.pc != nil {
		_ = h.pc.Close()
	}
	h.wg.Wait()
}

// notApplicable is a design that lacks a feature a case needs.
type notApplicable struct{ why string }

func (n *notApplicable) Error() string { return n.why }

// startStatus turns a failed start into n/a with the reason.
func startStatus(err error) (Status, string) {
	var na *notApplicable
	if errors.As(err, &na) {
		return NA, na.why
	}
	return NA, "design did not start: " + err.Error()
}

// ConnectTimeout and IdleTimeout are what every design is configured
// with in the cases about those timeouts.
const (
	ConnectTimeout = time.Second
	IdleTimeout    = time.Second
)

// Backpressure bounds: what a stalled reader may have accepted from the
// writer (the kernel's socket buffers on both legs plus the design's own
// buffers), and how much the design's RSS may grow meanwhile.
const (
	bpTotal    = 96 << 20
	bpMaxQueue = 64 << 20
	bpMaxRSS   = 32 << 20
	bpStall    = 2 * time.Second // the catalogue's 5 s, shortened to bound the matrix
)

// fdsBackTo waits up to d for the design's fd count to return to base.
func fdsBackTo(h *Harness, base int, d time.Duration) (int, bool) {
	deadline := time.Now().Add(d)
	for {
		n := h.FDs()
		if n <= base || time.Now().After(deadline) {
			return n, n <= base
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// onConns dials n conns to addr at once and runs f on each; it returns
// what went wrong (f returns "" when nothing did).
func onConns(ctx context.Context, addr string, n int, f func(i int, c *net.TCPConn) string) []string {
	errs := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial(ctx, addr)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer c.Close()
			if e := f(i, c); e != "" {
				errs <- e
			}
		}()
	}
	wg.Wait()
	close(errs)
	var out []string
	for e := range errs {
		out = append(out, e)
	}
	return out
}

// HeaderTimeout is every design's wait for a client's PROXY header in
// the receive cases: long enough for the slowest split write (13 writes
// 20 ms apart), short enough to bound the matrix. The spec suggests at
// least 3 s for production; a shorter wait changes no verdict here.
const HeaderTimeout = 2 * time.Second

// worse orders statuses pass < lenient < fail.
func worse(a, b Status) Status {
	rank := map[Status]int{Pass: 0, Lenient: 1, Fail: 2, NA: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func errEnd(err error) string {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return "EOF"
	}
	return err.Error()
}

func dial(ctx context.Context, addr string) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: 3 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return c.(*net.TCPConn), nil
}

// setup starts the backend and design and dials the design.
func setup(ctx context.Context, h *Harness, handle func(*net.TCPConn)) (*net.TCPConn, Status, string) {
	addr, err := h.Start(handle)
	if err != nil {
		st, obs := startStatus(err)
		return nil, st, obs
	}
	c, err := dial(ctx, addr)
	if err != nil {
		return nil, Fail, "connect: " + err.Error()
	}
	return c, "", ""
}

var (
	pattern = payload.Write
	drain   = payload.Drain
)

// largeSize is what crosses each way; the catalogue asks for 256 MiB, 64
// MiB keeps the whole matrix within minutes on 2 cores.
const largeSize = 64 << 20

// endOf reads until the conn ends and reports how: reset, EOF or timeout.
func endOf(c net.Conn, d time.Duration) (string, time.Duration) {
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(d))
	buf := make([]byte, 64<<10)
	for {
		if _, err := c.Read(buf); err != nil {
			switch {
			case errors.Is(err, syscall.ECONNRESET):
				return "reset", time.Since(start)
			case errors.Is(err, io.EOF):
				return "eof", time.Since(start)
			case errors.Is(err, os.ErrDeadlineExceeded):
				return "open", time.Since(start)
			default:
				return err.Error(), time.Since(start)
			}
		}
	}
}

// UDPTimeout is every design's UDP session idle timeout in the cases
// about sessions ending.
const UDPTimeout = time.Second

// pause sleeps for d, or less when ctx ends; it reports whether the case
// may go on.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// cancelled is the result of a case whose context ended under it.
func cancelled(ctx context.Context) (Status, string) {
	return Fail, "cancelled: " + context.Cause(ctx).Error()
}
