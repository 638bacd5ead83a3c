package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/l4bench/l4bench/proxy"
)

// A server from a configuration: one TCP entrypoint on a free loopback
// port, forwarding to an echo backend.
func ExampleNew() {
	backend, _ := net.Listen("tcp", "127.0.0.1:0")
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); _ = c.Close() }()
		}
	}()

	cfg, err := proxy.ParseConfig("example.yaml", []byte(`
entryPoints:
  web:
    address: "127.0.0.1:0"
    service: app
tcp:
  services:
    app:
      loadBalancer:
        strategy: buffered
        servers:
          - address: "`+backend.Addr().String()+`"
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	srv, err := proxy.New(cfg, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := srv.Listen(); err != nil {
		fmt.Println(err)
		return
	}
	go func() { _ = srv.Serve() }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()

	c, err := net.Dial("tcp", srv.Addrs()["web"].String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	_, _ = c.Write([]byte("hello"))
	_ = c.(*net.TCPConn).CloseWrite()
	reply, _ := io.ReadAll(c)
	fmt.Printf("%s\n", reply)
	// Output: hello
}
