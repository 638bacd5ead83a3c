package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/l4bench/l4bench/bench/report"
	"github.com/l4bench/l4bench/bench/target"
	"github.com/l4bench/l4bench/internal/testbin"
)

func TestMain(m *testing.M) {
	os.Exit(testbin.Run(m, func(path string) { target.L4ProxyPath = path }))
}

// run --format chooses what stdout carries: with csv or json, the results
// alone, so that a pipe gets nothing else; the notes and the folder's
// path go to stderr. A format it does not know is refused before any run.
func TestRunFormat(t *testing.T) {
	tiny := []string{"run", "--profile", "quick", "--scenario", "tcp-crr", "--target", "l4proxy-splice", "--count", "1"}
	tests := []struct {
		format string
		check  func(t *testing.T, stdout []byte)
	}{
		{"csv", func(t *testing.T, stdout []byte) {
			rows, err := csv.NewReader(bytes.NewReader(stdout)).ReadAll()
			require.NoError(t, err, "stdout is CSV and nothing else")
			require.Greater(t, len(rows), 1)
			assert.Contains(t, rows[0], "metric")
			var rates int
			for _, row := range rows[1:] {
				for _, cell := range row {
					if cell == "conn_rate" {
						rates++
					}
				}
			}
			assert.Equal(t, 2, rates, "one conn_rate sample each for direct and l4proxy-splice")
		}},
		{"json", func(t *testing.T, stdout []byte) {
			var res report.Results
			require.NoError(t, json.Unmarshal(stdout, &res), "stdout is results.json and nothing else")
			assert.Equal(t, report.Schema, res.Schema)
			assert.NotNil(t, res.Find("tcp-crr", "l4proxy-splice", "conn_rate"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append(tiny, "--out", t.TempDir(), "--format", tt.format), &stdout, &stderr)
			require.Equal(t, 0, code, stderr.String())
			tt.check(t, stdout.Bytes())
			assert.Contains(t, stderr.String(), "results: ")
		})
	}
}

func TestRunRefusesUnknownFormat(t *testing.T) {
	var stdout, stderr bytes.Buffer
	out := t.TempDir()
	code := run([]string{"run", "--format", "yaml", "--out", out}, &stdout, &stderr)
	assert.Equal(t, exitBadInput, code)
	assert.Equal(t, "l4bench: --format: unknown format \"yaml\" (choices: text, csv, json)\n", stderr.String())
	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing ran")
}

// compare takes two results.json files or their folders; a missing one is
// bad input naming it.
func TestCompareCommand(t *testing.T) {
	dir := t.TempDir()
	for i, net := range []string{"loopback", "veth"} {
		r := &report.Results{Schema: report.Schema, Host: report.Host{Net: net, MTU: []int{65536, 1500}[i]}}
		for _, v := range []float64{1e9, 1.1e9, 1.2e9} {
			r.Add("tcp-stream-1", "direct", "throughput", v/float64(i+1))
		}
		require.NoError(t, os.MkdirAll(filepath.Join(dir, net), 0o755))
		require.NoError(t, r.Save(filepath.Join(dir, net, "results.json")))
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"compare", filepath.Join(dir, "loopback"), filepath.Join(dir, "veth", "results.json")}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	assert.Contains(t, stdout.String(), "B: veth MTU 1500")
	assert.Contains(t, stdout.String(), "| direct | 1.02 GiB/s | 0.51 GiB/s | tie (0.50x) | 0.100 | - | - |")

	stdout.Reset()
	stderr.Reset()
	code = run([]string{"compare", filepath.Join(dir, "loopback"), filepath.Join(dir, "nowhere")}, &stdout, &stderr)
	assert.Equal(t, exitBadInput, code)
	assert.Contains(t, stderr.String(), "nowhere")
}

// gate --ab says when a run has fewer rounds than its allowances were
// tuned on: the allowances then assume less noise than the run has.
func TestGateWarnsOfFewerRounds(t *testing.T) {
	dir := t.TempDir()
	cal := filepath.Join(dir, "allowances.json")
	require.NoError(t, os.WriteFile(cal, []byte(`{"runs": 3, "rounds": 10, "margin": 2, "floor": 1,
		"metrics": {"tcp-crr/conn_rate": {"largest": 10, "allowance": 20, "rows": 15}}}`), 0o644))
	for _, tt := range []struct {
		rounds int
		warns  bool
	}{{5, true}, {10, false}, {15, false}} {
		t.Run(fmt.Sprint(tt.rounds, " rounds"), func(t *testing.T) {
			r := &report.Results{Schema: report.Schema, Settings: report.Settings{Count: tt.rounds}}
			for round := 1; round <= tt.rounds; round++ {
				for _, build := range []string{"base", "head"} {
					r.AddRound(round, "tcp-crr", "l4proxy-splice@"+build, "conn_rate", 5000+float64(round))
				}
			}
			path := filepath.Join(dir, fmt.Sprint(tt.rounds, ".json"))
			require.NoError(t, r.Save(path))
			var stdout, stderr bytes.Buffer
			code := run([]string{"gate", "--ab", "base,head", "--current", path, "--allowances", cal}, &stdout, &stderr)
			require.Equal(t, 0, code, stderr.String())
			const warning = "the allowances were tuned on A/A runs of 10 rounds and this run has 5"
			if tt.warns {
				assert.Contains(t, stderr.String(), warning)
			} else {
				assert.NotContains(t, stderr.String(), "tuned on")
			}
		})
	}
}
