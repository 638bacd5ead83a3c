package measure

import "time"

// IdleCost is what each idle connection costs, measured from outside.
type IdleCost struct {
	// SlabKiB is the kernel's slab growth per connection. It is
	// system-wide: the client's and the backend's sockets are in it too.
	SlabKiB float64
	// RSSKiB and FDs are the design's own growth per connection, summed
	// over its processes; several processes share pages, so their memory
	// is PSS. Both are zero when the design has no process (direct).
	RSSKiB, FDs float64
	// Processes is how many processes the design had with the
	// connections open.
	Processes int
}

// MeasureIdle reads the design's processes and the kernel's slab, opens n
// connections with open, waits settle, reads them again and closes the
// connections. pids is called once before and once while the
// connections are open (a forking design has its children by then, and
// walking thousands of them is slow, so not more often).
func MeasureIdle(n int, pids func() []int, open func() (closeAll func(), err error), settle time.Duration) (IdleCost, error) {
	before, err := ReadProcs(pids())
	if err != nil {
		return IdleCost{}, err
	}
	slab0, _ := Meminfo()
	closeAll, err := open()
	if err != nil {
		return IdleCost{}, err
	}
	time.Sleep(settle)
	ps := pids()
	after, err := ReadProcs(ps)
	slab1, _ := Meminfo()
	closeAll()
	if err != nil {
		return IdleCost{}, err
	}
	c := IdleCost{SlabKiB: float64(slab1["Slab"]-slab0["Slab"]) / float64(n), Processes: len(ps)}
	if len(ps) == 0 {
		return c, nil
	}
	mem := func(st ProcStats) float64 {
		if len(ps) > 1 && st.PSSKiB > 0 {
			return float64(st.PSSKiB)
		}
		return float64(st.RSSKiB)
	}
	c.RSSKiB = (mem(after) - mem(before)) / float64(n)
	c.FDs = float64(after.FDs-before.FDs) / float64(n)
	return c, nil
}
