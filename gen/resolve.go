package gen

import (
	"cmp"
	"encoding/json"
	"maps"
	"path"
	"slices"
	"strings"

	"cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/task"
)

// Profile is a resolved profile: everything the generator writes for it.
type Profile struct {
	Name        string
	Description string
	// File is the profile's file relative to the repository root
	// ("profiles/hello.cue").
	File    string
	Binary  string
	Dialect string
	Engine  Component
	// Plugins in stage order: by declared order, then by name.
	Plugins []Component
	Targets []Target
	// Unsupported lists the dialect's fields no linked engine or plugin
	// provides, sorted by path.
	Unsupported []Unsupported

	// PayloadSchema, ConfigSchema, DefaultConfig and ProfileJSON are the
	// contents of payload.schema.json, config.schema.json,
	// config.defaults.json and profile.json (indented JSON, trailing
	// newline).
	PayloadSchema []byte
	ConfigSchema  []byte
	DefaultConfig []byte
	ProfileJSON   []byte
}

// Component is a linked engine or plugin.
type Component struct {
	// Name is the name its CUE declares (engines.<name>, plugins.<name>).
	Name string `json:"name"`
	// GoImport is the import path of its Go package.
	GoImport string `json:"goImport"`
	// Module and Version are the Go module holding a third-party
	// component and its pinned version; empty for one of this module.
	Module  string `json:"module,omitempty"`
	Version string `json:"version,omitempty"`
	// Replace is the local folder replacing Module (slash path relative to
	// the repository root), empty when the module comes from the module
	// cache.
	Replace string `json:"replace,omitempty"`
	// Sum and GoModSum are go.sum's hashes of a downloaded third-party
	// module (its files, its go.mod); dir is the module's folder.
	Sum      string `json:"-"`
	GoModSum string `json:"-"`
	dir      string
	// Order is a plugin's declared stage order (0 for the engine).
	Order int `json:"order,omitempty"`
	// Config is the profile's resolved default config for it.
	Config json.RawMessage `json:"config"`
}

// Target is a platform a profile is built for, in GOOS/GOARCH terms.
type Target struct {
	OS   string `json:"os"`
	Arch string `json:"arch"`
}

func (t Target) String() string { return t.OS + "/" + t.Arch }

// BinaryName is the file name of the binary built for t:
// "<binary>-<os>-<arch>", plus ".exe" for windows.
func (t Target) BinaryName(binary string) string {
	name := binary + "-" + t.OS + "-" + t.Arch
	if t.OS == "windows" {
		name += ".exe"
	}
	return name
}

// Unsupported is a payload field of the profile's dialect that no linked
// engine or plugin provides (see worker.Unsupported).
type Unsupported struct {
	Path    string `json:"path"`
	Feature string `json:"feature"`
}

// topLevel are the fields the schemas and a profile file may define at the
// package's top level.
var topLevel = []string{"profile", "engines", "plugins", "dialects", "workerConfig", "workerDefaults"}

// Resolve loads profiles/<name>.cue with the schemas below root, validates
// it and computes everything the generator writes. Errors wrap
// ErrUnknownProfile or ErrInvalidProfile (as *ProfileError, with file:line
// of every problem).
//
// name is a profile name (profiles/<name>.cue) or the path of a profile
// file ending in ".cue" (see ProfileFile). The profile's components are
// found from their import paths (see EnginesDir); a third-party module
// without a replace is fetched with `go mod download`.
func Resolve(root, name string) (*Profile, error) {
	file, err := ProfileFile(root, name)
	if err != nil {
		return nil, err
	}
	modPath, err := ModulePath(root)
	if err != nil {
		return nil, err
	}
	files, err := schemaFiles(root)
	if err != nil {
		return nil, err
	}
	r := &resolver{ctx: newContext(), p: &Profile{File: file}, rootDir: root, modPath: modPath}
	name = strings.TrimSuffix(path.Base(file), ".cue")
	var errs cueerrors.Error
	r.inTree, errs = inTreeComponents(root, modPath)
	r.addErr(errs)
	for _, c := range r.inTree {
		files = append(files, c.Files...)
	}
	r.files = append(files, rootSource(root, file))
	if r.errs == nil {
		r.root, errs = loadInstance(r.ctx, r.files)
		r.cur = r.root
		r.addErr(errs)
	}
	if r.errs == nil {
		r.resolve(name)
	}
	if r.errs != nil {
		return nil, &ProfileError{Profile: name, Err: cueerrors.Sanitize(r.errs)}
	}
	return r.p, nil
}

// generatedFile is the file name positions in the composed CUE carry.
const generatedFile = "<composed>.cue"

type resolver struct {
	// cur is the value errors are reported against (for hints).
	cur     cue.Value
	rootDir string
	// modPath is this module's path; inTree its component folders.
	modPath string
	inTree  []*componentDir
	// linked maps a profile's plugin key to its component.
	linked map[string]Component
	files  []source
	ctx    *cue.Context
	root   cue.Value
	p      *Profile
	errs   cueerrors.Error
}

func (r *resolver) errorf(pos token.Pos, format string, args ...any) {
	r.errs = cueerrors.Append(r.errs, cueerrors.Newf(pos, format, args...))
}

// profileDecl is the part of #Profile the generator reads into Go.
type profileDecl struct {
	Name        string             `json:"name"`
	Description string             `json:"description"`
	Binary      string             `json:"binary"`
	Dialect     string             `json:"dialect"`
	Engine      compRef            `json:"engine"`
	Plugins     map[string]compRef `json:"plugins"`
	Targets     []Target           `json:"targets"`
}

// compRef is how a profile names a component (#Component).
type compRef struct {
	Import  string `json:"import"`
	Module  string `json:"module"`
	Version string `json:"version"`
	Replace string `json:"replace"`
}

// metaDecl is the part of #EngineMeta and #PluginMeta the generator reads
// into Go.
type metaDecl struct {
	OS        []string            `json:"os"`
	Abilities []string            `json:"abilities"`
	Order     int                 `json:"order"`
	Conflicts []string            `json:"conflicts"`
	Requires  map[string][]string `json:"requires"`
	Available bool                `json:"available"`
	Reason    string              `json:"reason"`
}

// resolve checks the loaded profile in phases, each reporting every
// problem it finds, and composes the profile's schemas when none did.
func (r *resolver) resolve(name string) {
	pv, decl, ok := r.decodeProfile(name)
	if !ok {
		return
	}
	r.linkComponents(pv, decl)
	if r.errs != nil {
		return
	}
	dialect := r.checkDialect(pv, decl)
	emeta := r.checkEngine(pv, decl, dialect)
	r.checkPlugins(pv, decl, emeta)
	if r.errs != nil {
		return
	}
	r.compose(dialect)
}

// decodeProfile checks that the files define only known top-level fields
// and a concrete profile that unifies with #Profile, decodes it into r.p
// and checks its name against its file.
func (r *resolver) decodeProfile(name string) (cue.Value, *profileDecl, bool) {
	// Stray top-level fields: most likely a misspelt `profile:`.
	iter, err := r.root.Fields()
	if err != nil {
		r.addErr(err)
		return cue.Value{}, nil, false
	}
	for iter.Next() {
		if !slices.Contains(topLevel, iter.Selector().String()) {
			r.errorf(iter.Value().Pos(), "unknown top-level field %q: a profile file defines only `profile: {...}` (allowed: %s)",
				iter.Selector().String(), strings.Join(topLevel, ", "))
		}
	}
	pv := r.root.LookupPath(cue.ParsePath("profile"))
	r.addErr(pv.Validate(cue.Concrete(true)))
	r.addErr(r.root.Validate())
	if r.errs != nil {
		return pv, nil, false
	}
	var decl profileDecl
	if err := pv.Decode(&decl); err != nil {
		r.addErr(err)
		return pv, nil, false
	}
	p := r.p
	p.Name, p.Description, p.Binary, p.Dialect, p.Targets = decl.Name, decl.Description, decl.Binary, decl.Dialect, decl.Targets
	if decl.Name != name {
		r.errorf(declPos(pv.LookupPath(cue.ParsePath("name"))), "profile.name is %q but the file is %s: rename one so they match", decl.Name, p.File)
	}
	return pv, &decl, true
}

// checkDialect looks up the profile's dialect and checks that Go names it
// (task.Dialect) and that the profile's targets are OSes its tasks are
// written for. The value returned does not exist for an unknown dialect.
func (r *resolver) checkDialect(pv cue.Value, decl *profileDecl) cue.Value {
	dialect := r.root.LookupPath(cue.MakePath(cue.Str("dialects"), cue.Str(decl.Dialect)))
	if !dialect.Exists() {
		r.errorf(declPos(pv.LookupPath(cue.ParsePath("dialect"))), "profile.dialect: unknown dialect %q; known dialects: %s",
			decl.Dialect, strings.Join(r.keys("dialects"), ", "))
		return dialect
	}
	if _, ok := dialectConsts[task.Dialect(decl.Dialect)]; !ok {
		r.errorf(declPos(dialect), "dialects.%s: no task.Dialect constant names this dialect: add one to task/dialect.go and gen/emit.go, so that components are told it", decl.Dialect)
	}
	var allowed []string
	if dos := dialect.LookupPath(cue.ParsePath("os")); !dos.Exists() || dos.Decode(&allowed) != nil {
		return dialect
	}
	for _, t := range decl.Targets {
		if !slices.Contains(allowed, t.OS) {
			r.errorf(r.targetPos(pv, t), "profile.targets: dialect %s is for %s tasks, not %s: remove the target or choose the dialect for %s",
				decl.Dialect, strings.Join(allowed, ", "), t.OS, t.OS)
		}
	}
	return dialect
}

// checkEngine looks up the profile's engine (into r.p.Engine) and checks
// that it runs on every target OS and speaks the dialect. It returns the
// engine's metadata, nil when the engine is unknown or unusable.
func (r *resolver) checkEngine(pv cue.Value, decl *profileDecl, dialect cue.Value) *metaDecl {
	kindPos := declPos(pv.LookupPath(cue.ParsePath("engine.import")))
	kind := r.p.Engine.Name
	engine, emeta, ok := r.meta("engines", kind, kindPos, "profile.engine", "engine")
	if !ok {
		return nil
	}
	for _, t := range decl.Targets {
		if !slices.Contains(emeta.OS, t.OS) {
			r.errorf(r.targetPos(pv, t), "profile.targets: engine %s does not support %s (it supports %s): remove the target or choose another engine",
				kind, t.OS, strings.Join(emeta.OS, ", "))
		}
	}
	if dialect.Exists() && !engine.LookupPath(cue.MakePath(cue.Str("payload"), cue.Str(decl.Dialect))).Exists() {
		r.errorf(kindPos, "profile.engine: engine %s does not speak dialect %q (it speaks %s): change profile.dialect or the engine",
			kind, decl.Dialect, strings.Join(keysOf(engine.LookupPath(cue.ParsePath("payload"))), ", "))
	}
	return emeta
}

// checkPlugins looks up the profile's plugins (into r.p.Plugins, in stage
// order) and checks each against the targets, the other plugins, the
// dialect and the engine's abilities (emeta; nil skips them).
func (r *resolver) checkPlugins(pv cue.Value, decl *profileDecl, emeta *metaDecl) {
	oses := map[string]bool{}
	for _, t := range decl.Targets {
		oses[t.OS] = true
	}
	pluginsV := pv.LookupPath(cue.ParsePath("plugins"))
	chosen := keysOf(pluginsV)
	for _, pn := range chosen {
		pos := declPos(pluginsV.LookupPath(cue.MakePath(cue.Str(pn))))
		linked, ok := r.linked[pn]
		if !ok {
			continue
		}
		mv, m, ok := r.meta("plugins", pn, pos, "profile.plugins."+pn, "plugin")
		if !ok {
			continue
		}
		linked.Order = m.Order
		r.p.Plugins = append(r.p.Plugins, linked)
		for _, o := range slices.Sorted(maps.Keys(oses)) {
			if !slices.Contains(m.OS, o) {
				r.errorf(pos, "profile.plugins.%s: plugin %s does not support target OS %s (it supports %s): remove the plugin or the %s targets",
					pn, pn, o, strings.Join(m.OS, ", "), o)
			}
		}
		for _, c := range m.Conflicts {
			if slices.Contains(chosen, c) {
				r.errorf(pos, "profile.plugins.%s: plugin %s conflicts with plugin %s: remove one of them", pn, pn, c)
			}
		}
		r.checkPluginDialect(pos, pn, mv, decl)
		if emeta != nil {
			r.checkAbilities(pos, pn, m, decl, emeta)
		}
	}
	slices.SortFunc(r.p.Plugins, func(a, b Component) int {
		return cmp.Or(cmp.Compare(a.Order, b.Order), cmp.Compare(a.Name, b.Name))
	})
}

// checkPluginDialect checks that plugin pn runs with the profile's dialect:
// that its metadata has a payload fragment for it.
func (r *resolver) checkPluginDialect(pos token.Pos, pn string, mv cue.Value, decl *profileDecl) {
	payload := mv.LookupPath(cue.ParsePath("payload"))
	if payload.LookupPath(cue.MakePath(cue.Str(decl.Dialect))).Exists() {
		return
	}
	speaks := "no dialect"
	if ks := keysOf(payload); len(ks) > 0 {
		speaks = strings.Join(ks, ", ")
	}
	r.errorf(pos, "profile.plugins.%s: plugin %s does not run with dialect %s (it runs with %s): remove the plugin or change profile.dialect",
		pn, pn, decl.Dialect, speaks)
}

// checkAbilities checks that the engine has every ability plugin pn
// requires with the profile's dialect.
func (r *resolver) checkAbilities(pos token.Pos, pn string, m *metaDecl, decl *profileDecl, emeta *metaDecl) {
	for _, a := range m.Requires[decl.Dialect] {
		if slices.Contains(emeta.Abilities, a) {
			continue
		}
		r.errorf(pos, "profile.plugins.%s: plugin %s needs engine ability %q (%s) with dialect %s, which engine %s lacks: remove the plugin or choose another engine",
			pn, pn, a, engines.Ability(a).Interface(), decl.Dialect, r.p.Engine.Name)
	}
}

// declPos returns the position of the conjunct of v declared outside
// schemas/profile.cue (the profile's own line, or a fragment's), falling
// back to v.Pos(): a field that also matches a pattern constraint there
// reports the pattern's position otherwise.
func declPos(v cue.Value) token.Pos {
	const generic = SchemasDir + "/profile.cue"
	if p := v.Pos(); p.IsValid() && p.Filename() != generic {
		return p
	}
	for _, c := range conjuncts(v) {
		if p := c.Pos(); p.IsValid() && p.Filename() != generic {
			return p
		}
	}
	return v.Pos()
}

func conjuncts(v cue.Value) []cue.Value {
	op, args := v.Expr()
	if op != cue.AndOp {
		return nil
	}
	var out []cue.Value
	for _, a := range args {
		out = append(out, a)
		out = append(out, conjuncts(a)...)
	}
	return out
}

// meta looks up engines.<name> or plugins.<name> and decodes its metadata.
func (r *resolver) meta(section, name string, pos token.Pos, field, what string) (cue.Value, *metaDecl, bool) {
	mv := r.root.LookupPath(cue.MakePath(cue.Str(section), cue.Str(name)))
	if !mv.Exists() {
		r.errorf(pos, "%s: unknown %s %q; known %ss: %s", field, what, name, what, strings.Join(r.keys(section), ", "))
		return mv, nil, false
	}
	var m metaDecl
	if err := mv.Decode(&m); err != nil {
		r.addErr(err)
		return mv, nil, false
	}
	for _, def := range []string{"#Config", "#Defaults"} {
		if !mv.LookupPath(cue.MakePath(cue.Def(def))).Exists() {
			r.errorf(mv.Pos(), "%s %s declares no %s: add `%s: {...}` to its CUE, in its folder", what, name, def, def)
			return mv, nil, false
		}
	}
	if !m.Available {
		r.errorf(pos, "%s: %s %s is not available yet: %s", field, what, name, m.Reason)
		return mv, nil, false
	}
	return mv, &m, true
}

func (r *resolver) keys(section string) []string {
	return keysOf(r.root.LookupPath(cue.ParsePath(section)))
}

// targetPos is the position of target t in the profile (first match).
func (r *resolver) targetPos(pv cue.Value, t Target) token.Pos {
	list, err := pv.LookupPath(cue.ParsePath("targets")).List()
	if err != nil {
		return pv.Pos()
	}
	for list.Next() {
		var got Target
		if list.Value().Decode(&got) == nil && got == t {
			if p := declPos(list.Value().LookupPath(cue.ParsePath("os"))); p.IsValid() {
				return p
			}
			return declPos(list.Value())
		}
	}
	return pv.Pos()
}

// keysOf returns the regular field names of a struct value, sorted.
func keysOf(v cue.Value) []string {
	var out []string
	iter, err := v.Fields()
	if err != nil {
		return nil
	}
	for iter.Next() {
		out = append(out, iter.Selector().Unquoted())
	}
	slices.Sort(out)
	return out
}
