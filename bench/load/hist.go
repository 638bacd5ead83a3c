package load

import (
	"syscall"

	"github.com/HdrHistogram/hdrhistogram-go"
)

type histT = hdrhistogram.Histogram

// syscallECONNREFUSED is returned by a send on a connected UDP socket
// after an ICMP port unreachable; the datagram simply counts as lost.
const syscallECONNREFUSED = syscall.ECONNREFUSED
