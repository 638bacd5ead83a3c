package target

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/l4bench/l4bench/bench/backend"
	"github.com/l4bench/l4bench/internal/sockdiag"
	"github.com/l4bench/l4bench/internal/testbin"
)

func TestMain(m *testing.M) {
	os.Exit(testbin.Run(m, func(path string) { L4ProxyPath = path }))
}

// TestEveryTargetForwards starts each target that can run here against
// echo backends and checks TCP (and UDP where served) round trips. A peer
// that is not installed is skipped with the reason Check gives.
func TestEveryTargetForwards(t *testing.T) {
	echo, err := backend.Start(backend.Echo, "127.0.0.1:0", false, 0)
	require.NoError(t, err)
	defer echo.Close()
	uecho, err := backend.Start(backend.Echo, "127.0.0.1:0", true, 0)
	require.NoError(t, err)
	defer uecho.Close()
	// Relative folders, as `l4bench run --out results` gives: every
	// design must find its config and write its logs there.
	t.Chdir(t.TempDir())

	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			tg, err := Lookup(name)
			require.NoError(t, err)
			if _, err := tg.Check(); err != nil {
				t.Skipf("%s: %v", name, err)
			}
			dir := filepath.Join("runs", name)
			require.NoError(t, os.MkdirAll(dir, 0o755))
			backends := map[string]string{backend.Echo: echo.Addr(), UDP: uecho.Addr()}
			why, lacksUDP := SupportOf(tg).Lacks[FeatureUDP]
			if lacksUDP {
				assert.NotEmpty(t, why, "a design without UDP says why")
				// Asked for UDP anyway, it refuses to start, naming it.
				_, err := tg.Start(Spec{Dir: dir, Backends: backends})
				var lacks *LacksError
				require.ErrorAs(t, err, &lacks)
				assert.Equal(t, FeatureUDP, lacks.Feature)
				delete(backends, UDP)
			}
			inst, err := tg.Start(Spec{Dir: dir, Backends: backends})
			require.NoError(t, err)
			defer func() { assert.NoError(t, inst.Stop()) }()
			if name != "direct" {
				assert.NotEmpty(t, inst.PIDs())
			}

			c, err := net.DialTimeout("tcp", inst.Addrs[backend.Echo], 2*time.Second)
			require.NoError(t, err)
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Write([]byte("hello"))
			require.NoError(t, err)
			buf := make([]byte, 5)
			_, err = io.ReadFull(c, buf)
			require.NoError(t, err)
			assert.Equal(t, "hello", string(buf))
			if name != "direct" {
				assertKeepAlive(t, inst.Addrs[backend.Echo], c.LocalAddr(), echo.Addr())
			}

			if lacksUDP {
				return
			}
			uaddr, ok := inst.Addrs[UDP]
			require.True(t, ok, "a design with UDP serves the UDP route")
			u, err := net.Dial("udp", uaddr)
			require.NoError(t, err)
			defer u.Close()
			_ = u.SetDeadline(time.Now().Add(3 * time.Second))
			_, err = u.Write([]byte("dgram"))
			require.NoError(t, err)
			n, err := u.Read(buf)
			require.NoError(t, err)
			assert.Equal(t, "dgram", string(buf[:n]))
		})
	}
}

// assertKeepAlive checks that a design keeps both sockets of a connection
// alive as l4proxy does (keepAliveIdle): the one facing the client (local
// port the entrypoint's, peer the client) and the one facing the backend
// (peer the backend). A timer can read as a retransmission until the last
// bytes are acknowledged, and l4proxy's loop strategies turn keep-alive
// on for the backend socket 1 s after its connect (proxy/copy's
// keepAliveAfter), so it is asked again for up to 5 s.
func assertKeepAlive(t *testing.T, entry string, client net.Addr, backendAddr string) {
	t.Helper()
	port := func(addr string) int {
		_, n, err := splitHostPortNum(addr)
		require.NoError(t, err)
		return n
	}
	sides := []struct {
		name          string
		local, remote int
	}{
		{"the socket facing the client", port(entry), client.(*net.TCPAddr).Port},
		{"the socket facing the backend", 0, port(backendAddr)},
	}
	for _, side := range sides {
		var timers []uint8
		var err error
		if !assert.Eventually(t, func() bool {
			timers, err = sockdiag.Timers(side.local, side.remote)
			return err == nil && len(timers) == 1 && timers[0] == sockdiag.TimerKeepAlive
		}, 5*time.Second, 20*time.Millisecond, "%s has keep-alive on", side.name) {
			t.Logf("%s: timers %v (2 is keep-alive), error %v", side.name, timers, err)
		}
	}
}

func TestLookupUnknown(t *testing.T) {
	_, err := Lookup("envoy")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown target "envoy" (choices: direct, l4proxy-splice`)
}

func TestTraefikMissingSaysHowToBuildIt(t *testing.T) {
	t.Setenv("L4BENCH_TRAEFIK", "")
	t.Setenv("L4BENCH_CACHE", t.TempDir())
	t.Setenv("PATH", t.TempDir())
	_, err := Traefik{}.Check()
	require.ErrorIs(t, err, ErrNotInstalled)
	assert.Contains(t, err.Error(), "run make peers-traefik")

	t.Setenv("L4BENCH_TRAEFIK", "/nonexistent/traefik")
	_, err = Traefik{}.Check()
	require.ErrorIs(t, err, ErrNotInstalled)
	assert.Contains(t, err.Error(), "L4BENCH_TRAEFIK=/nonexistent/traefik")
}

// TestEveryTargetListensOnIPv6: with Spec.IPv6 every design binds ::1
// and forwards to an IPv4 backend.
func TestEveryTargetListensOnIPv6(t *testing.T) {
	echo, err := backend.Start(backend.Echo, "127.0.0.1:0", false, 0)
	require.NoError(t, err)
	defer echo.Close()
	for _, name := range Names() {
		if name == "direct" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			tg, err := Lookup(name)
			require.NoError(t, err)
			if _, err := tg.Check(); err != nil {
				t.Skipf("%s: %v", name, err)
			}
			inst, err := tg.Start(Spec{Dir: t.TempDir(), IPv6: true, Backends: map[string]string{backend.Echo: echo.Addr()}})
			require.NoError(t, err)
			defer func() { assert.NoError(t, inst.Stop()) }()
			assert.True(t, strings.HasPrefix(inst.Addrs[backend.Echo], "[::1]:"), inst.Addrs[backend.Echo])
			c, err := net.DialTimeout("tcp", inst.Addrs[backend.Echo], 2*time.Second)
			require.NoError(t, err)
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Write([]byte("six"))
			require.NoError(t, err)
			buf := make([]byte, 3)
			_, err = io.ReadFull(c, buf)
			require.NoError(t, err)
			assert.Equal(t, "six", string(buf))
		})
	}
}

func TestPickAddrKeepsTheHostAsked(t *testing.T) {
	tests := []struct {
		spec Spec
		kind string
		want string
	}{
		{Spec{}, backend.Echo, "127.0.0.1:"},
		{Spec{}, UDP, "127.0.0.1:"},
		{Spec{Wildcard: true}, backend.Echo, "0.0.0.0:"}, // Go itself reports [::]:port
		{Spec{Wildcard: true}, UDP, "0.0.0.0:"},
		{Spec{IPv6: true}, backend.Echo, "[::1]:"},
		{Spec{IPv6: true}, UDP, "[::1]:"},
	}
	for _, tt := range tests {
		inst := &Instance{Addrs: map[string]string{}, host: tt.spec.listenHost()}
		addr, err := inst.pickAddr(tt.kind)
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(addr, tt.want), "%+v %s: %s", tt.spec, tt.kind, addr)
		assert.Equal(t, addr, inst.Addrs[tt.kind])
	}
}

// TestReadinessIgnoresOtherProcessesSockets: a port listened on by
// someone else must not pass for the design's (it did when a design
// failed to bind a port that another case's backend had just taken).
func TestReadinessIgnoresOtherProcessesSockets(t *testing.T) {
	other, err := net.Listen("tcp", "127.0.0.1:0") // not the design's
	require.NoError(t, err)
	defer other.Close()
	i := &Instance{Target: "sleeper", Addrs: map[string]string{backend.Echo: other.Addr().String()}}
	require.NoError(t, i.launch(t.TempDir(), "sleeper.log", "", nil, "sleep", "5"))
	defer i.Stop()
	err = i.waitListening(300 * time.Millisecond)
	require.Error(t, err, "another process's listener was taken for the design's")
	assert.Contains(t, err.Error(), "not listening on "+other.Addr().String())
}

// TestPortsComeFromBelowTheEphemeralRange: designs' ports can never be
// taken by a port-0 listener or a client's local port in the meantime,
// and no port is handed out twice.
func TestPortsComeFromBelowTheEphemeralRange(t *testing.T) {
	lo, hi := portRange()
	seen := map[string]bool{}
	for range 50 {
		addr, err := freePortOn("tcp", "127.0.0.1", true)
		require.NoError(t, err)
		_, port, err := splitHostPortNum(addr)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, port, lo)
		assert.Less(t, port, hi)
		assert.False(t, seen[addr], "port handed out twice: %s", addr)
		seen[addr] = true
	}
}

// --peer-bin points a built-in peer at another binary: its version and
// its runs come from that binary.
func TestPeerBin(t *testing.T) {
	socat, err := lookPath("socat", "socat")
	if err != nil {
		t.Skip("socat is not installed")
	}
	t.Cleanup(func() { delete(peerBins, "socat") })
	link := filepath.Join(t.TempDir(), "my-socat")
	require.NoError(t, os.Symlink(socat, link))
	require.NoError(t, SetPeerBin("socat", link))
	got, err := lookPath("socat", "socat")
	require.NoError(t, err)
	assert.Equal(t, link, got)
	tg, err := Lookup("socat")
	require.NoError(t, err)
	inst, err := tg.Start(Spec{Dir: t.TempDir(), Backends: map[string]string{backend.Echo: "127.0.0.1:9"}})
	require.NoError(t, err)
	defer inst.Stop()
	assert.Equal(t, link, inst.Command[0], "the run used the given binary")
	assert.ErrorContains(t, SetPeerBin("envoy", link), `unknown peer "envoy"`)
}
