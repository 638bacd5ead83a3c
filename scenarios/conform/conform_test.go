package conform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/l4bench/l4bench/bench/report"
	"github.com/l4bench/l4bench/bench/target"
	"github.com/l4bench/l4bench/internal/testbin"

	copystrat "github.com/l4bench/l4bench/proxy/copy"

	"github.com/l4bench/l4bench/internal/badinput"
)

func TestMain(m *testing.M) {
	os.Exit(testbin.Run(m, func(path string) { target.L4ProxyPath = path }))
}

// TestL4ProxyPassesEveryStrictCase: every implemented case, every
// strategy, strict pass (no lenient, no n/a).
func TestL4ProxyPassesEveryStrictCase(t *testing.T) {
	if testing.Short() {
		// Timing cases (1000 concurrent dials, churn) measure the race
		// detector's slowdown, not the proxy; the plain pass runs them.
		t.Skip("the whole matrix runs without -short")
	}
	out := t.TempDir()
	m, err := Run(context.Background(), Options{Targets: ours(), Out: out})
	require.NoError(t, err)
	assert.Equal(t, Names(), m.Cases)
	for _, r := range m.Results {
		assert.Equal(t, Pass, Status(r.Status), "%s on %s: %s", r.Case, r.Target, r.Observed)
	}
	assert.Empty(t, m.OwnFailures())

	data, err := os.ReadFile(filepath.Join(out, "conformance.json"))
	require.NoError(t, err)
	var back Matrix
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Len(t, back.Results, len(Cases)*len(ours()), "every case on every l4proxy strategy")

	var buf bytes.Buffer
	m.Print(&buf)
	assert.Contains(t, buf.String(), "tcp-basic-bidir")
	assert.Contains(t, buf.String(), "l4p-splice")
}

func TestBadInput(t *testing.T) {
	_, err := Run(context.Background(), Options{Cases: []string{"tcp-telepathy"}})
	var bad *badinput.Error
	require.True(t, errors.As(err, &bad))
	assert.ErrorContains(t, err, `--case: unknown case "tcp-telepathy"`)
	_, err = Run(context.Background(), Options{Targets: []string{"envoy"}})
	require.True(t, errors.As(err, &bad))
}

func TestOwnFailuresOnlyCountL4Proxy(t *testing.T) {
	m := &Matrix{Conformance: report.Conformance{Results: []Result{
		{Case: "a", Target: "nginx", Status: string(Fail)},
		{Case: "a", Target: "l4proxy-splice", Status: string(Lenient)},
		{Case: "b", Target: "l4proxy-pooled", Status: string(Fail), Observed: "x"},
	}}}
	own := m.OwnFailures()
	require.Len(t, own, 1)
	assert.Equal(t, "l4proxy-pooled", own[0].Target)
}

// A design that must run and cannot is missed, not silently skipped: ours
// always, a peer when asked for by name. A peer missing from the default
// set is only skipped.
func TestMissedDesigns(t *testing.T) {
	built := target.L4ProxyPath
	t.Cleanup(func() { target.L4ProxyPath = built })
	target.L4ProxyPath = filepath.Join(t.TempDir(), "no-l4proxy-here")
	tests := []struct {
		name    string
		targets []string
		missed  []string
	}{
		{"ours by name", ours(), ours()},
		{"ours by default", nil, ours()},
		{"a peer by name", []string{"traefik"}, []string{"traefik"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if slices.Contains(tt.targets, "traefik") {
				tr, err := target.Lookup("traefik")
				require.NoError(t, err)
				if _, err := tr.Check(); err == nil {
					t.Skip("traefik is built here: it is not missing")
				}
			}
			m, err := Run(context.Background(), Options{Targets: tt.targets, Cases: []string{"tcp-basic-bidir"}, Out: t.TempDir()})
			require.NoError(t, err)
			var missed []string
			for _, s := range m.Missed {
				name, _, _ := strings.Cut(s, ": ")
				missed = append(missed, name)
			}
			assert.Equal(t, tt.missed, missed)
		})
	}
}

// TestCancelledUDPCaseStopsAtOnce: the session-timeout case sleeps and
// reads for about 5 s; cancelled after 500 ms, the matrix must return
// soon after (1.5 s covers starting and stopping the design with 1000
// sessions here), not when the case would have ended.
func TestCancelledUDPCaseStopsAtOnce(t *testing.T) {
	for _, name := range []string{"udp-session-idle-timeout", "udp-many-clients", "udp-slow-session-isolation"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			m, err := Run(ctx, Options{Targets: []string{"l4proxy-splice"}, Cases: []string{name}, Out: t.TempDir()})
			took := time.Since(start)
			assert.Less(t, took, 2*time.Second, "the case ran on after its context ended")
			if err != nil {
				assert.ErrorIs(t, err, context.DeadlineExceeded)
				return
			}
			require.Len(t, m.Results, 1)
			assert.Equal(t, Fail, Status(m.Results[0].Status))
			assert.Contains(t, m.Results[0].Observed, "cancelled before the case finished")
		})
	}
}

// ours are the l4proxy targets, one per registered strategy.
func ours() []string {
	var out []string
	for _, s := range copystrat.Names() {
		out = append(out, "l4proxy-"+s)
	}
	return out
}
