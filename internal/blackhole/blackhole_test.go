package blackhole

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestListenHangsConnects(t *testing.T) {
	bh, err := Listen()
	require.NoError(t, err)
	defer bh.Close()
	_, err = net.DialTimeout("tcp", bh.Addr(), 200*time.Millisecond)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout(), "a connect that never completes times out: %v", err)
}

func TestRefusingRefusesAndHoldsItsPort(t *testing.T) {
	r, err := Refusing()
	require.NoError(t, err)
	defer r.Close()

	for range 3 {
		_, err = net.DialTimeout("tcp", r.Addr(), time.Second)
		assert.ErrorIs(t, err, syscall.ECONNREFUSED, "refused at once, every time")
	}

	// Held: nobody can listen there, not even a Go listener, which sets
	// SO_REUSEADDR (so neither can a proxy under test listening on port 0
	// be handed its own backend's port).
	_, err = net.Listen("tcp", r.Addr())
	assert.ErrorIs(t, err, syscall.EADDRINUSE)

	r.Close()
	ln, err := net.Listen("tcp", r.Addr())
	require.NoError(t, err, "Close gives the port back")
	_ = ln.Close()
}
