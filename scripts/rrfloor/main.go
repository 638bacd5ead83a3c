// Command rrfloor measures the floor this machine puts under a closed-loop
// request/response through any proxy: the round trip of 64 bytes to an
// echo server in the same process (what l4bench's direct measures), in
// another process, and in another process pinned to the same or to the
// other CPU. A proxy adds two process boundaries (four wake-ups per round
// trip), so these figures bound what tcp-rr can show of a design.
//
//	go run ./scripts/rrfloor
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sort"
	"time"
)

const (
	runFor  = 2 * time.Second
	maxOps  = 2_000_000
	msgSize = 64
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "echo" {
		serveEcho()
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	go acceptEcho(ln)
	report("echo in this process (direct)", ln.Addr().String())
	_ = ln.Close()

	variants := []struct{ name, client, server string }{
		{"echo in another process", "", ""},
		{"both pinned to CPU 0", "0", "0"},
		{"client on CPU 1, echo on CPU 0", "1", "0"},
	}
	for _, v := range variants {
		addr, stop := startEcho(v.server)
		if v.client != "" {
			pinned(v.name, v.client, addr)
		} else {
			report(v.name, addr)
		}
		stop()
	}
}

// startEcho runs this binary as an echo server in a process of its own,
// pinned to cpu when set, and returns its address.
func startEcho(cpu string) (string, func()) {
	self, err := os.Executable()
	check(err)
	argv := []string{self, "echo"}
	if cpu != "" {
		argv = append([]string{"taskset", "-c", cpu}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	out, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	addr, err := bufio.NewReader(out).ReadString('\n')
	check(err)
	return addr[:len(addr)-1], func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
}

// pinned measures from a copy of this process pinned to cpu.
func pinned(name, cpu, addr string) {
	self, err := os.Executable()
	check(err)
	cmd := exec.Command("taskset", "-c", cpu, self, "client", name, addr)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	check(cmd.Run())
}

func serveEcho() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	fmt.Println(ln.Addr())
	acceptEcho(ln)
}

func acceptEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() { _, _ = io.Copy(c, c); _ = c.Close() }()
	}
}

func init() {
	if len(os.Args) == 4 && os.Args[1] == "client" {
		report(os.Args[2], os.Args[3])
		os.Exit(0)
	}
}

func report(name, addr string) {
	c, err := net.Dial("tcp", addr)
	check(err)
	defer c.Close()
	msg, buf := make([]byte, msgSize), make([]byte, msgSize)
	var lat []time.Duration
	end := time.Now().Add(runFor)
	for i := 0; i < maxOps && time.Now().Before(end); i++ {
		t0 := time.Now()
		_, err := c.Write(msg)
		check(err)
		_, err = io.ReadFull(c, buf)
		check(err)
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Printf("%-34s p50 %6.1f µs  p99 %6.1f µs  (%d round trips)\n", name,
		float64(lat[len(lat)/2].Nanoseconds())/1e3, float64(lat[len(lat)*99/100].Nanoseconds())/1e3, len(lat))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "rrfloor:", err)
		os.Exit(1)
	}
}
