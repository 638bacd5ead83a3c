// Package place says where a role of a run runs: the load client, a
// design, the backends. Today a place is this host or a network namespace
// the run made (bench/place's Veth); scenarios and load clients never look
// inside one. They bind the place's address, start processes through its
// Command, and open in-process sockets through its Do. A place on another
// machine would give the same three things (docs/places.md).
//
//	v, err := place.SetupVeth(place.VethOptions{MTU: 1500})
//	defer v.Close()
//	argv := v.Design.Command([]string{"l4proxy", "--listen", v.Design.Addr + ":9000"})
package place

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Place is where a role runs.
type Place struct {
	// NetNS is the network namespace ("" on the host's own).
	NetNS string
	// Addr is the address a process here binds and is reached at.
	Addr string
}

// Host is this machine's own network stack, on loopback.
func Host() Place { return Place{Addr: "127.0.0.1"} }

// IsHost says whether the place is this machine's own network stack.
func (p Place) IsHost() bool { return p.NetNS == "" }

// Command is argv made to run in the place: unchanged on the host,
// through `ip netns exec` in a namespace (it execs, so the process keeps
// its PID, and /proc sampling works as on the host).
func (p Place) Command(argv []string) []string {
	if p.IsHost() {
		return argv
	}
	return append([]string{"ip", "netns", "exec", p.NetNS}, argv...)
}

// Do runs f with its sockets opened in the place. In a namespace, f runs
// on an OS thread of its own that enters the namespace and is never given
// back to the Go scheduler (the goroutine ends locked, so the thread
// exits): no other goroutine ever runs in the place by accident. Sockets
// made in f stay in the namespace wherever they are used later.
func (p Place) Do(f func() error) error {
	if p.IsHost() {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		fd, err := unix.Open("/run/netns/"+p.NetNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", p.NetNS, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", p.NetNS, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
