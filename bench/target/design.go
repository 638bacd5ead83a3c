package target

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/l4bench/l4bench/internal/badinput"
	copystrat "github.com/l4bench/l4bench/proxy/copy"
)

// Design is a design the user brings as a YAML file (l4bench run
// --design FILE): their envoy, haproxy 3.x, caddy-l4 or their own build,
// with their own config, measured like any built-in target.
//
//	name: my-envoy
//	protocols: [tcp, udp]
//	version: [envoy, --version]
//	config: |                      # optional, a Go template
//	  ...{{range .Routes}}{{.Name}} {{.Listen}} -> {{.Backend}}{{end}}...
//	command: [envoy, -c, "{{.ConfigPath}}", --concurrency, "{{.Workers}}"]
//	data_path: userspace           # optional: what strace must see
//
// The templates see .Routes (each with Name, Protocol, Listen, Backend),
// .Workers, .ConfigPath and .Dir, and the functions host and port, which
// split a host:port. A design must listen on every route's Listen
// address; readiness waits for its process tree to hold those sockets.
type Design struct {
	DesignName string   `yaml:"name"`
	Protocols  []string `yaml:"protocols"`
	VersionCmd []string `yaml:"version"`
	Config     string   `yaml:"config"`
	CommandT   []string `yaml:"command"`
	Path       string   `yaml:"data_path"`

	file    string
	config  *template.Template
	command []*template.Template
}

// Route is one entrypoint a design serves: the backend kind it carries
// (echo, sink, source, udp), the protocol, where to listen and where to
// forward.
type Route struct {
	Name, Protocol, Listen, Backend string
}

// DesignData is what a design's templates see.
type DesignData struct {
	Routes     []Route
	Workers    int
	ConfigPath string
	Dir        string
}

var designName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

var templateFuncs = template.FuncMap{
	"host": func(hostport string) string { h, _, _ := net.SplitHostPort(hostport); return h },
	"port": func(hostport string) string { _, p, _ := net.SplitHostPort(hostport); return p },
}

// LoadDesign reads and checks a design file. Every error names the file
// and the field, and says what to do; nothing is started.
func LoadDesign(file string) (*Design, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("design %s: %w", file, err)
	}
	d := &Design{file: file}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(d); err != nil {
		return nil, fmt.Errorf("design %s: %v (fields: name, protocols, version, config, command, data_path)", file, err)
	}
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("design %s: %s: %s", file, field, fmt.Sprintf(format, args...))
	}
	if !designName.MatchString(d.DesignName) {
		return nil, bad("name", "%q: give a name of lower-case letters, digits, '.', '_' or '-', e.g. my-envoy", d.DesignName)
	}
	if _, err := Lookup(d.DesignName); err == nil {
		return nil, bad("name", "%q is a built-in design: choose another name", d.DesignName)
	}
	if len(d.Protocols) == 0 {
		return nil, bad("protocols", "empty: list tcp, udp or both")
	}
	for _, p := range d.Protocols {
		if p != "tcp" && p != "udp" {
			return nil, bad("protocols", "%q: the choices are tcp and udp", p)
		}
	}
	if !slices.Contains(d.Protocols, "tcp") {
		return nil, bad("protocols", "no tcp: every scenario but the UDP ones needs a TCP route, so list tcp")
	}
	switch d.Path {
	case "", copystrat.DataPathSplice, copystrat.DataPathUserspace:
	default:
		return nil, bad("data_path", "%q: the choices are splice and userspace (or leave it out)", d.Path)
	}
	if len(d.CommandT) == 0 {
		return nil, bad("command", "empty: give the argv that starts the design, e.g. [envoy, -c, \"{{.ConfigPath}}\"]")
	}
	if len(d.VersionCmd) == 0 {
		return nil, bad("version", "empty: give an argv whose first output line is the version, e.g. [envoy, --version]")
	}
	sample := DesignData{Routes: []Route{{Name: "echo", Protocol: "tcp", Listen: "127.0.0.1:1", Backend: "127.0.0.1:2"}},
		Workers: 1, ConfigPath: "/dev/null", Dir: os.TempDir()}
	parse := func(field, text string) (*template.Template, error) {
		t, err := template.New(field).Funcs(templateFuncs).Option("missingkey=error").Parse(text)
		if err != nil {
			return nil, bad(field, "%v", err)
		}
		if err := t.Execute(&bytes.Buffer{}, sample); err != nil {
			return nil, bad(field, "%v (the fields are .Routes with .Name .Protocol .Listen .Backend, .Workers, .ConfigPath, .Dir)", err)
		}
		return t, nil
	}
	if d.Config != "" {
		if d.config, err = parse("config", d.Config); err != nil {
			return nil, err
		}
	}
	for i, arg := range d.CommandT {
		t, err := parse(fmt.Sprintf("command[%d]", i), arg)
		if err != nil {
			return nil, err
		}
		d.command = append(d.command, t)
	}
	if strings.Contains(d.CommandT[0], "{{") {
		return nil, bad("command[0]", "the program is a template: name it plainly, e.g. envoy or /opt/envoy/bin/envoy")
	}
	return d, nil
}

// File is the design file the design was read from.
func (d *Design) File() string { return d.file }

// Name implements Target.
func (d *Design) Name() string { return d.DesignName }

// Check implements Target: the version command's first line, or how to
// make the program available.
func (d *Design) Check() (string, error) {
	for _, argv := range [][]string{d.CommandT, d.VersionCmd} {
		if _, err := exec.LookPath(argv[0]); err != nil {
			return "", fmt.Errorf("%w: design %s: %s is not installed or not in PATH (install it, or give its full path in the file)", ErrNotInstalled, d.file, argv[0])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, d.VersionCmd[0], d.VersionCmd[1:]...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil {
		return "", fmt.Errorf("design %s: version: %s failed: %v: %s", d.file, strings.Join(d.VersionCmd, " "), err, line)
	}
	return line, nil
}

// Support implements Declarer: a design brought as a file takes no
// per-case settings (timeouts, PROXY protocol): its own config decides
// them. UDP is there when the file lists it.
func (d *Design) Support() Support {
	const own = "a design brought as a file takes no per-case settings: its own config decides"
	lacks := map[Feature]string{}
	for _, f := range []Feature{FeatureSendProxyV1, FeatureSendProxyV2, FeatureAcceptProxy, FeatureRequireProxy,
		FeatureIdleTimeout, FeatureConnectTimeout, FeatureHeaderTimeout, FeatureBufferSize, FeatureExtraArgs} {
		lacks[f] = own
	}
	if !slices.Contains(d.Protocols, "udp") {
		lacks[FeatureUDP] = "design " + d.file + " lists no udp protocol"
	}
	return Support{Lacks: lacks, Approximate: map[Feature]string{FeatureHalfClose: "the design's own half-close handling, as its config sets it"}}
}

// DataPath implements DataPather with the file's data_path ("" when it
// says none: the strace verdict is then reported as it is).
func (d *Design) DataPath() string { return d.Path }

// Start implements Target: one listen address per route, the config
// written into the run folder, the command started there.
func (d *Design) Start(spec Spec) (*Instance, error) {
	if err := Refuse(d, spec); err != nil {
		return nil, err
	}
	inst := &Instance{Target: d.DesignName, wrap: spec.Wrap, Addrs: map[string]string{}, host: spec.listenHost(), place: spec.Place}
	data := DesignData{Workers: spec.workers(), Dir: spec.Dir}
	for _, kind := range spec.kinds(true) {
		addr, err := inst.pickAddr(kind)
		if err != nil {
			return nil, err
		}
		proto := "tcp"
		if kind == UDP {
			proto = "udp"
		}
		data.Routes = append(data.Routes, Route{Name: kind, Protocol: proto, Listen: addr, Backend: spec.Backends[kind]})
	}
	dir, err := filepath.Abs(spec.Dir)
	if err != nil {
		return nil, err
	}
	data.Dir = dir
	if d.config != nil {
		data.ConfigPath = filepath.Join(dir, d.DesignName+".conf")
		var b bytes.Buffer
		if err := d.config.Execute(&b, data); err != nil {
			return nil, fmt.Errorf("design %s: config: %w", d.file, err)
		}
		if err := writeFile(data.ConfigPath, b.String()); err != nil {
			return nil, err
		}
		inst.Config = data.ConfigPath
	}
	var argv []string
	for i, t := range d.command {
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return nil, fmt.Errorf("design %s: command[%d]: %w", d.file, i, err)
		}
		argv = append(argv, b.String())
	}
	err = inst.launch(spec.Dir, d.DesignName+".log", spec.CPUs, nil, argv...)
	inst, err = inst.started(err)
	if err != nil {
		return nil, &DesignStartError{File: d.file, Err: err}
	}
	return inst, nil
}

// DesignStartError is a design file whose design did not start or never
// listened on its routes: a mistake in the file more often than not.
type DesignStartError struct {
	File string
	Err  error
}

func (e *DesignStartError) Error() string {
	return fmt.Sprintf("design %s: %v (check that command starts the design in the foreground and that it listens on every route's .Listen address)", e.File, e.Err)
}

func (e *DesignStartError) Unwrap() error { return e.Err }

// RegisterDesign adds a design file's design to the targets. The same
// file registered again (a second run in one process) is the same target.
func RegisterDesign(d *Design) error {
	if t, err := Lookup(d.DesignName); err == nil {
		if old, ok := t.(*Design); ok && old.file == d.file {
			mu.Lock()
			registry[d.DesignName] = d
			mu.Unlock()
			return nil
		}
		return fmt.Errorf("design %s: name: %q is already a target (built in, or in another --design file)", d.file, d.DesignName)
	}
	Register(d)
	return nil
}

var _ interface {
	Target
	Declarer
	DataPather
} = (*Design)(nil)

// LoadDesigns reads and registers design files (--design FILE) and
// returns their names. A bad file is bad input, named.
func LoadDesigns(files []string) ([]string, error) {
	var names []string
	for _, f := range files {
		d, err := LoadDesign(f)
		if err != nil {
			return nil, badinput.Wrap(err)
		}
		if err := RegisterDesign(d); err != nil {
			return nil, badinput.Wrap(err)
		}
		names = append(names, d.Name())
	}
	return names, nil
}

// Select is the target list of a run or a matrix: --peer-bin applied,
// --design files loaded and registered, and the names asked for, or by
// default every built-in target and this run's own designs.
func Select(names, designs, peerBins []string) ([]string, error) {
	if err := SetPeerBins(peerBins); err != nil {
		return nil, err
	}
	mine, err := LoadDesigns(designs)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		names = DefaultNames(mine)
	}
	return names, nil
}

// DefaultNames are the built-in targets and this run's own design files
// (not those an earlier run in this process registered).
func DefaultNames(mine []string) []string {
	var out []string
	for _, n := range Names() {
		t, _ := Lookup(n)
		if _, isDesign := t.(*Design); isDesign && !slices.Contains(mine, n) {
			continue
		}
		out = append(out, n)
	}
	return out
}
