// Package buildinfo tells which build of the binary is running.
package buildinfo

import (
	"runtime"
	"runtime/debug"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// Set by the linker: -X github.com/knowingnode/knowingnode/internal/buildinfo.version=...
var (
	version  = "dev"
	revision = ""
)

// Get returns the version given at link time and the VCS revision, taken from
// the linker flag or else from what the go command stamped into the binary.
func Get() *knowingnodev1.BuildInfo {
	rev := revision
	if rev == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					rev = s.Value
				}
			}
		}
	}
	return &knowingnodev1.BuildInfo{Version: version, Revision: rev, GoVersion: runtime.Version()}
}
