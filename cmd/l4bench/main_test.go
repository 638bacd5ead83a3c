package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
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
