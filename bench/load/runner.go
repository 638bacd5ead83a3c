package load

import (
	"context"
	"time"
)

// Options are what every load client takes, embedded in its own options
// (fortio's RunnerOptions): the address to load and how long to run.
// Every client also bounds its operations by MaxOps.
type Options struct {
	Addr     string
	Duration time.Duration
}

// Runner is a load client ready to run, with its typed result (fortio's
// Runnable): StreamOptions, RROptions, CRROptions, UDPOptions and
// CapacityOptions are each one.
type Runner[R any] interface {
	Run(ctx context.Context) (R, error)
}

var (
	_ Runner[StreamResult]   = StreamOptions{}
	_ Runner[RRResult]       = RROptions{}
	_ Runner[CRRResult]      = CRROptions{}
	_ Runner[UDPResult]      = UDPOptions{}
	_ Runner[CapacityResult] = CapacityOptions{}
)

// Run implements Runner: Stream.
func (o StreamOptions) Run(ctx context.Context) (StreamResult, error) { return Stream(ctx, o) }

// Run implements Runner: RR.
func (o RROptions) Run(ctx context.Context) (RRResult, error) { return RR(ctx, o) }

// Run implements Runner: CRR.
func (o CRROptions) Run(ctx context.Context) (CRRResult, error) { return CRR(ctx, o) }

// Run implements Runner: UDP.
func (o UDPOptions) Run(ctx context.Context) (UDPResult, error) { return UDP(ctx, o) }

// Run implements Runner: UDPCapacity.
func (o CapacityOptions) Run(ctx context.Context) (CapacityResult, error) { return UDPCapacity(ctx, o) }

// defaultMessageSize is the request of RR and CRR, and the least datagram
// of UDP and the capacity search carries a send time and a sequence.
const (
	defaultMessageSize = 64
	minDatagram        = 16
)
