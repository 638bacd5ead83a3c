package target

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/l4bench/l4bench/bench/backend"
)

func writeDesign(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "design.yaml")
	require.NoError(t, os.WriteFile(f, []byte(body), 0o644))
	return f
}

// A bad design file is refused before anything starts, with one line
// naming the file, the field and the fix.
func TestDesignFileMistakes(t *testing.T) {
	const ok = "name: mine\nprotocols: [tcp]\nversion: [sh, -c, echo 1.0]\ncommand: [sleep, \"30\"]\n"
	tests := []struct{ name, body, want string }{
		{"unknown field", ok + "workers: 4\n", "field workers not found"},
		{"bad name", "name: My Envoy\nprotocols: [tcp]\nversion: [x]\ncommand: [x]\n", `name: "My Envoy": give a name of lower-case letters`},
		{"built-in name", "name: nginx\nprotocols: [tcp]\nversion: [x]\ncommand: [x]\n", `name: "nginx" is a built-in design`},
		{"no protocols", "name: mine\nversion: [x]\ncommand: [x]\n", "protocols: empty: list tcp, udp or both"},
		{"unknown protocol", "name: mine\nprotocols: [sctp]\nversion: [x]\ncommand: [x]\n", `protocols: "sctp": the choices are tcp and udp`},
		{"no command", "name: mine\nprotocols: [tcp]\nversion: [x]\n", "command: empty"},
		{"unknown template field", "name: mine\nprotocols: [tcp]\nversion: [x]\ncommand: [x, \"{{range .Routes}}{{.Listne}}{{end}}\"]\n",
			"at <.Listne>: can't evaluate field Listne in type target.Route (the fields are .Routes with .Name .Protocol .Listen .Backend"},
		{"templated program", "name: mine\nprotocols: [tcp]\nversion: [x]\ncommand: [\"{{.Dir}}/envoy\"]\n", "command[0]: the program is a template"},
		{"bad data path", ok + "data_path: kernel\n", `data_path: "kernel": the choices are splice and userspace`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := writeDesign(t, tt.body)
			_, err := LoadDesign(f)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "design "+f+": ")
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// A design whose program is missing says so at Check; one that never
// listens on its routes fails to start with a DesignStartError naming
// the file and what to check.
func TestDesignFileThatCannotRun(t *testing.T) {
	d, err := LoadDesign(writeDesign(t, "name: missing\nprotocols: [tcp]\nversion: [no-such-program-here, -v]\ncommand: [no-such-program-here]\n"))
	require.NoError(t, err)
	_, err = d.Check()
	assert.True(t, errors.Is(err, ErrNotInstalled))
	assert.Contains(t, err.Error(), "no-such-program-here is not installed or not in PATH")

	f := writeDesign(t, "name: deaf\nprotocols: [tcp]\nversion: [sh, -c, echo deaf 1.0]\ncommand: [sleep, \"30\"]\n")
	d, err = LoadDesign(f)
	require.NoError(t, err)
	v, err := d.Check()
	require.NoError(t, err)
	assert.Equal(t, "deaf 1.0", v, "the version command's first line")
	echo, err := backend.Start(backend.Echo, "127.0.0.1:0", false, 0)
	require.NoError(t, err)
	defer echo.Close()
	_, err = d.Start(Spec{Dir: t.TempDir(), Backends: map[string]string{backend.Echo: echo.Addr()}})
	var se *DesignStartError
	require.ErrorAs(t, err, &se)
	assert.Contains(t, err.Error(), "design "+f+": deaf not listening on 127.0.0.1:")
	assert.Contains(t, err.Error(), "listens on every route's .Listen address")

	// Asked for UDP without listing it, it refuses to start.
	_, err = d.Start(Spec{Dir: t.TempDir(), Backends: map[string]string{UDP: "127.0.0.1:9"}})
	var lacks *LacksError
	require.ErrorAs(t, err, &lacks)
	assert.Equal(t, FeatureUDP, lacks.Feature)
}
