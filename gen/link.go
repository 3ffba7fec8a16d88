package gen

import (
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/token"
	"golang.org/x/mod/modfile"

	"github.com/workergen/workergen/internal/suggest"
)

// linkComponents finds the folder of the profile's engine and of each of
// its plugins from their import paths (into r.p.Engine and r.linked),
// checks that each declares a component of the right kind under the
// profile's name for it, and reloads the package with the CUE of the
// third-party ones.
func (r *resolver) linkComponents(pv cue.Value, decl *profileDecl) {
	var third []source
	modules := map[string]Component{}
	if c, comp := r.component(pv.LookupPath(cue.ParsePath("engine")), "engines", "profile.engine", decl.Engine, modules); c != nil {
		comp.Name = c.Name
		r.p.Engine = comp
		if comp.Module != "" {
			third = append(third, c.Files...)
		}
	}
	r.linked = map[string]Component{}
	pluginsV := pv.LookupPath(cue.ParsePath("plugins"))
	for _, pn := range slices.Sorted(maps.Keys(decl.Plugins)) {
		v := pluginsV.LookupPath(cue.MakePath(cue.Str(pn)))
		c, comp := r.component(v, "plugins", "profile.plugins."+pn, decl.Plugins[pn], modules)
		if c == nil {
			continue
		}
		if c.Name != pn {
			r.errorf(declPos(v), "profile.plugins.%s: %s declares plugin %q (%s), not %q: key it %q in the profile",
				pn, c.Import, c.Name, c.Pos, pn, c.Name)
			continue
		}
		comp.Name = pn
		r.linked[pn] = comp
		if comp.Module != "" {
			third = append(third, c.Files...)
		}
	}
	if len(third) == 0 || r.errs != nil {
		return
	}
	profile := r.files[len(r.files)-1]
	r.files = append(append(r.files[:len(r.files)-1:len(r.files)-1], third...), profile)
	v, errs := loadInstance(r.ctx, r.files)
	r.root, r.cur = v, v
	r.addErr(errs)
}

// component finds the folder of the component ref names (v is its value
// in the profile, field its path there) and reads its CUE. It returns nil
// after recording an error. modules collects the third-party modules
// seen, to reject two versions of one.
func (r *resolver) component(v cue.Value, section, field string, ref compRef, modules map[string]Component) (*componentDir, Component) {
	comp := Component{GoImport: ref.Import, Module: ref.Module, Version: ref.Version}
	importPos := declPos(v.LookupPath(cue.ParsePath("import")))
	kind := strings.TrimSuffix(section, "s")
	if ref.Import == r.modPath || strings.HasPrefix(ref.Import, r.modPath+"/") {
		if ref.Module != "" || ref.Version != "" || ref.Replace != "" {
			r.errorf(importPos, "%s: %s is in this module (%s): remove module, version and replace, which only third-party components need", field, ref.Import, r.modPath)
			return nil, comp
		}
		return r.inTreeComponent(importPos, section, field, ref.Import), comp
	}
	if ref.Module == "" || ref.Version == "" {
		r.errorf(importPos, "%s: %s is outside this module (%s): add module (the Go module holding the package, e.g. %q) and version (e.g. \"v1.0.0\"), and replace for a local copy",
			field, ref.Import, r.modPath, guessModule(ref.Import))
		return nil, comp
	}
	if err := checkModuleRef(ref.Import, ref.Module, ref.Version); err != nil {
		r.errorf(importPos, "%s: %v", field, err)
		return nil, comp
	}
	if prev, ok := modules[ref.Module]; ok && prev.Version != ref.Version {
		r.errorf(declPos(v.LookupPath(cue.ParsePath("version"))), "%s: module %s at %s, but %s names it at %s: one worker links one version of a module; pin both to the same",
			field, ref.Module, ref.Version, prev.GoImport, prev.Version)
		return nil, comp
	}
	modDir, display, ok := r.moduleDir(v, field, ref, &comp)
	if !ok {
		return nil, comp
	}
	comp.dir = modDir
	if ref.Replace != "" {
		comp.Replace = display
	}
	modules[ref.Module] = comp
	sub := strings.TrimPrefix(strings.TrimPrefix(ref.Import, ref.Module), "/")
	pkgDir := filepath.Join(modDir, filepath.FromSlash(sub))
	if st, err := os.Stat(pkgDir); err != nil || !st.IsDir() {
		r.errorf(importPos, "%s: module %s@%s (%s) has no package %s: no folder %q in it; check import, or the version",
			field, ref.Module, ref.Version, display, ref.Import, sub)
		return nil, comp
	}
	c, errs := readComponentDir(pkgDir, path.Join(display, sub), ref.Import)
	if errs != nil {
		r.addErr(errs)
		return nil, comp
	}
	if c == nil {
		r.errorf(importPos, "%s: package %s has no CUE (no .cue file in %s): a component's folder holds its Go package and the CUE declaring it (`%s: <name>: {...}`)",
			field, ref.Import, path.Join(display, sub), section)
		return nil, comp
	}
	if c.Section != section {
		r.errorf(importPos, "%s: %s declares %s %s (%s), not a%s %s", field, ref.Import, c.kind(), c.Name, c.Pos, article(kind), kind)
		return nil, comp
	}
	for _, in := range r.inTree {
		if in.Section == c.Section && in.Name == c.Name {
			r.errorf(c.Pos, "%s %s of %s has the name of this module's %s %s (%s): rename it in its CUE (and in the profile)",
				kind, c.Name, ref.Import, kind, in.Name, in.Import)
			return nil, comp
		}
	}
	return c, comp
}

func article(kind string) string {
	if kind == "engine" {
		return "n"
	}
	return ""
}

// guessModule suggests a module path for an import path: its first three
// elements for a code host, else its first two.
func guessModule(imp string) string {
	parts := strings.Split(imp, "/")
	n := 2
	if len(parts) >= 3 && strings.Contains(parts[0], ".") && (parts[0] == "github.com" || parts[0] == "gitlab.com" || parts[0] == "bitbucket.org") {
		n = 3
	}
	return strings.Join(parts[:min(n, len(parts))], "/")
}

// inTreeComponent returns the component folder of this module at imp.
func (r *resolver) inTreeComponent(pos token.Pos, section, field, imp string) *componentDir {
	var candidates []string
	for _, c := range r.inTree {
		if c.Import == imp {
			if c.Section != section {
				r.errorf(pos, "%s: %s declares %s %s (%s), not a%s %s", field, imp, c.kind(), c.Name, c.Pos,
					article(strings.TrimSuffix(section, "s")), strings.TrimSuffix(section, "s"))
				return nil
			}
			return c
		}
		if c.Section == section {
			candidates = append(candidates, c.Import)
		}
	}
	kind := strings.TrimSuffix(section, "s")
	hint := ""
	if best := suggest.Closest(imp, candidates); best != "" {
		hint = fmt.Sprintf(" did you mean %q?", best)
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(imp, r.modPath), "/")
	r.errorf(pos, "%s: unknown %s %q: folder %s of this module holds no CUE declaring one;%s %ss of this module: %s",
		field, kind, imp, cmpOr(rel, "."), hint, kind, strings.Join(candidates, ", "))
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// moduleDir returns the folder holding module ref.Module and the name
// positions give it: the replace folder (relative to the profile file's
// folder; its go.mod must declare the module), else the module cache's
// copy from `go mod download`.
func (r *resolver) moduleDir(v cue.Value, field string, ref compRef, comp *Component) (dir, display string, ok bool) {
	if ref.Replace != "" {
		pos := declPos(v.LookupPath(cue.ParsePath("replace")))
		dir = filepath.FromSlash(ref.Replace)
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(r.rootDir, filepath.FromSlash(path.Dir(r.p.File)), dir)
		}
		display = displayPath(r.rootDir, dir)
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err != nil {
			r.errorf(pos, "%s.replace: %s has no go.mod: replace names the folder of module %s (holding its go.mod), relative to the profile file's folder",
				field, display, ref.Module)
			return "", "", false
		}
		if got := modfile.ModulePath(data); got != ref.Module {
			r.errorf(pos, "%s.replace: %s/go.mod declares module %q, not %q: fix module or replace", field, display, got, ref.Module)
			return "", "", false
		}
		return dir, display, true
	}
	info, err := downloadModule(r.rootDir, ref.Module, ref.Version)
	if err != nil {
		r.errorf(declPos(v.LookupPath(cue.ParsePath("module"))), "%s: cannot resolve module %s@%s: %v: check module and version (and GOPROXY), or set replace to a local copy of the module",
			field, ref.Module, ref.Version, err)
		return "", "", false
	}
	comp.Sum, comp.GoModSum = info.Sum, info.GoModSum
	return info.Dir, ref.Module + "@" + ref.Version, true
}
