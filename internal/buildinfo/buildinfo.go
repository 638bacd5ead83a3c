// Package buildinfo says which build of l4bench or l4proxy is running:
// the module version and the VCS revision, "+dirty" for a modified tree.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Revision is set at link time by make build (-X): the commit built from,
// with "+dirty" when the tree had changes. Go's own VCS stamping is off
// wherever GOFLAGS has -buildvcs=false, and fails outside a checkout.
var Revision string

// Info is one build.
type Info struct {
	Module   string // module path
	Version  string // module version, "(devel)" for a build from a checkout
	Revision string // VCS revision, "+dirty" appended for a modified tree; "" when unknown
	Go       string
}

// Get describes the running binary.
func Get() Info {
	i := Info{Module: "github.com/l4bench/l4bench", Version: "(devel)", Go: runtime.Version()}
	var vcs, dirty string
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Path != "" {
			i.Module = bi.Main.Path
		}
		if bi.Main.Version != "" {
			i.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				vcs = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
	}
	switch {
	case Revision != "" && Revision != "+dirty":
		i.Revision = Revision
	case vcs != "":
		i.Revision = vcs + dirty
	}
	return i
}

// String is the one line both programs print for --version.
func (i Info) String() string {
	rev := i.Revision
	if rev == "" {
		rev = "unknown revision"
	}
	return fmt.Sprintf("%s %s (%s, %s)", i.Module, i.Version, rev, i.Go)
}
