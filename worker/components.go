package worker

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"reflect"
	"runtime/debug"
	"strings"
	"text/tabwriter"
)

// ComponentInfo describes one engine or plugin linked into the binary.
type ComponentInfo struct {
	// Kind is "engine" or "plugin"; Name the name its CUE declares.
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Import is the Go import path of its package.
	Import string `json:"import"`
	// Module and Version are the Go module that provided the package and
	// its version, from the binary's build info (runtime/debug); empty
	// when the binary has none.
	Module  string `json:"module"`
	Version string `json:"version"`
	// Replace is where the module was replaced to ("../../examples/x", or
	// "example.com/fork v1.2.3"), empty when it was not.
	Replace string `json:"replace,omitempty"`
	// ThirdParty is true for a component from another module than
	// workergen's own.
	ThirdParty bool `json:"thirdParty"`
}

// Origin is "workergen" or "third-party".
func (c ComponentInfo) Origin() string {
	if c.ThirdParty {
		return "third-party"
	}
	return "workergen"
}

// ModuleVersion is "<module> <version>", plus " => <replace>" when the
// module was replaced.
func (c ComponentInfo) ModuleVersion() string {
	s := strings.TrimSpace(c.Module + " " + c.Version)
	if c.Replace != "" {
		s += " => " + c.Replace
	}
	return s
}

// selfModule is workergen's module path, derived from this package's.
func selfModule() string {
	return strings.TrimSuffix(reflect.TypeFor[Build]().PkgPath(), "/worker")
}

// Components lists b's engine, then its plugins in stage order, each with
// the module that provided it according to the binary's build info.
func Components(b Build) []ComponentInfo {
	bi, _ := debug.ReadBuildInfo()
	return componentsFrom(b, bi, selfModule())
}

func componentsFrom(b Build, bi *debug.BuildInfo, self string) []ComponentInfo {
	out := []ComponentInfo{componentInfo("engine", b.Engine.Name, b.Engine.Import, bi, self)}
	for _, p := range b.Plugins {
		out = append(out, componentInfo("plugin", p.Name, p.Import, bi, self))
	}
	return out
}

// componentInfo finds the module providing package imp: the build info's
// main module or dependency with the longest path that is imp or a prefix
// of it ending at a slash.
func componentInfo(kind, name, imp string, bi *debug.BuildInfo, self string) ComponentInfo {
	c := ComponentInfo{Kind: kind, Name: name, Import: imp}
	if bi == nil || imp == "" {
		c.ThirdParty = imp != "" && imp != self && !strings.HasPrefix(imp, self+"/")
		return c
	}
	var best *debug.Module
	for _, m := range append([]*debug.Module{&bi.Main}, bi.Deps...) {
		if m.Path != "" && (imp == m.Path || strings.HasPrefix(imp, m.Path+"/")) && (best == nil || len(m.Path) > len(best.Path)) {
			best = m
		}
	}
	if best != nil {
		c.Module, c.Version = best.Path, best.Version
		if r := best.Replace; r != nil {
			// A folder replacement has no version ("(devel)").
			c.Replace = strings.TrimSpace(r.Path + " " + strings.TrimPrefix(r.Version, "(devel)"))
		}
	}
	c.ThirdParty = c.Module != self
	return c
}

// printVersion writes --version's report: version, commit, profile,
// engine and plugins, then one line per component with its import path,
// module version and origin.
func printVersion(b Build, w io.Writer) {
	names := make([]string, len(b.Plugins))
	for i, p := range b.Plugins {
		names[i] = p.Name
	}
	plugins := strings.Join(names, ", ")
	if plugins == "" {
		plugins = "(none)"
	}
	fmt.Fprintf(w, "%s %s\ncommit: %s\nprofile: %s\nengine: %s\nplugins: %s\ncomponents:\n", b.Binary, version, commit, b.Profile, b.Engine.Name, plugins)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range Components(b) {
		fmt.Fprintf(tw, "  %s %s\t%s\t%s\t%s\n", c.Kind, c.Name, c.Import, c.ModuleVersion(), c.Origin())
	}
	_ = tw.Flush()
}

// cmdComponents is `components [--json]`: a table (KIND, NAME, IMPORT,
// MODULE, ORIGIN) or, with --json, a JSON array of ComponentInfo.
func cmdComponents(b Build, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(b.Binary+" components", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print a JSON array of {kind, name, import, module, version, replace, thirdParty}")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "usage: %s components [--json]\n", b.Binary)
		return ExitUsage
	}
	cs := Components(b)
	if *asJSON {
		out, err := json.MarshalIndent(cs, "", "  ")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return ExitInternal
		}
		_, _ = stdout.Write(append(out, '\n'))
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tIMPORT\tMODULE\tORIGIN")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Kind, c.Name, c.Import, c.ModuleVersion(), c.Origin())
	}
	_ = tw.Flush()
	return 0
}
