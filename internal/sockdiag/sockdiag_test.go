package sockdiag

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// inode of a socket, as /proc/self/fd shows it.
func inode(t *testing.T, c syscall.Conn) uint32 {
	t.Helper()
	rc, err := c.SyscallConn()
	require.NoError(t, err)
	var link string
	require.NoError(t, rc.Control(func(fd uintptr) {
		link, err = os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	}))
	require.NoError(t, err)
	var n uint32
	_, err = fmt.Sscanf(strings.TrimPrefix(link, "socket:"), "[%d]", &n)
	require.NoError(t, err)
	return n
}

// connect dials ln with d and accepts: the two ends of one connection,
// closed when the test ends.
func connect(t *testing.T, ln net.Listener, d *net.Dialer) (client, server net.Conn) {
	t.Helper()
	client, err := d.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { server.Close() })
	return client, server
}

func TestBound(t *testing.T) {
	tests := []struct{ network, addr string }{
		{"tcp", "127.0.0.1:0"},
		{"tcp", "[::1]:0"},
		{"udp", "127.0.0.1:0"},
		{"udp", "[::1]:0"},
	}
	for _, tt := range tests {
		t.Run(tt.network+" "+tt.addr, func(t *testing.T) {
			var port int
			var c syscall.Conn
			if tt.network == "tcp" {
				ln, err := net.Listen(tt.network, tt.addr)
				require.NoError(t, err)
				defer ln.Close()
				port, c = ln.Addr().(*net.TCPAddr).Port, ln.(*net.TCPListener)
				// A connection to it uses the same local port on the
				// accepted side, and is not listening.
				_, srv := connect(t, ln, &net.Dialer{})
				got, err := Bound(tt.network, port)
				require.NoError(t, err)
				assert.Equal(t, []uint32{inode(t, c)}, got)
				assert.NotContains(t, got, inode(t, srv.(*net.TCPConn)))
			} else {
				pc, err := net.ListenPacket(tt.network, tt.addr)
				require.NoError(t, err)
				defer pc.Close()
				port, c = pc.LocalAddr().(*net.UDPAddr).Port, pc.(*net.UDPConn)
				got, err := Bound(tt.network, port)
				require.NoError(t, err)
				assert.Equal(t, []uint32{inode(t, c)}, got)
			}
			require.NoError(t, c.(interface{ Close() error }).Close())
			got, err := Bound(tt.network, port)
			require.NoError(t, err)
			assert.Empty(t, got, "closed: nothing bound to %d", port)
		})
	}
	_, err := Bound("sctp", 1)
	assert.ErrorContains(t, err, `"sctp"`)
}

// TestTimers: a connection with keep-alive on shows the keep-alive timer,
// one with it off shows none, each found by its local and its peer's port.
func TestTimers(t *testing.T) {
	tests := []struct {
		name      string
		keepAlive time.Duration // on the dialing side (negative: off)
		want      uint8
	}{
		{"keep-alive on", 15 * time.Second, TimerKeepAlive},
		{"keep-alive off", -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			c, _ := connect(t, ln, &net.Dialer{KeepAlive: tt.keepAlive})
			local := c.LocalAddr().(*net.TCPAddr).Port
			server := ln.Addr().(*net.TCPAddr).Port
			timers, err := Timers(local, server)
			require.NoError(t, err)
			assert.Equal(t, []uint8{tt.want}, timers, "the dialed side")
			timers, err = Timers(0, server)
			require.NoError(t, err)
			assert.Len(t, timers, 1, "one connection has the listener's port as its peer's")
			timers, err = Timers(server, local)
			require.NoError(t, err)
			assert.Len(t, timers, 1, "the accepted side, found from its end")
		})
	}
}
