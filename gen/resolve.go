package gen

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
	"cuelang.org/go/encoding/jsonschema"

	"github.com/workergen/workergen/internal/suggest"
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
	Name     string `json:"name"`
	GoImport string `json:"goImport"`
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
func Resolve(root, name string) (*Profile, error) {
	file, err := ProfileFile(root, name)
	if err != nil {
		return nil, err
	}
	files, err := schemaFiles(root)
	if err != nil {
		return nil, err
	}
	r := &resolver{ctx: newContext(), p: &Profile{File: file}, rootDir: root, files: append(files, file)}
	var errs cueerrors.Error
	r.root, errs = loadInstance(r.ctx, root, r.files)
	r.cur = r.root
	r.addErr(errs)
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
	files   []string
	ctx     *cue.Context
	root    cue.Value
	p       *Profile
	errs    cueerrors.Error
}

func (r *resolver) errorf(pos token.Pos, format string, args ...any) {
	r.errs = cueerrors.Append(r.errs, cueerrors.Newf(pos, format, args...))
}

// addErr records err, each CUE error in it with a hint added where one
// helps (see withHint).
func (r *resolver) addErr(err error) {
	if err == nil {
		return
	}
	errs := cueerrors.Errors(err)
	byPath := map[string][]cueerrors.Error{}
	for _, e := range errs {
		k := strings.Join(e.Path(), ".")
		byPath[k] = append(byPath[k], e)
	}
	replaced := map[string]bool{}
	for _, e := range errs {
		k := strings.Join(e.Path(), ".")
		format, _ := e.Msg()
		if replaced[k] && strings.HasPrefix(format, "conflicting values") {
			continue // folded into the disjunction's message
		}
		if strings.Contains(format, "errors in empty disjunction") {
			if d := r.disjunctionError(k, byPath[k]); d != nil {
				r.errs = cueerrors.Append(r.errs, d)
				replaced[k] = true
				continue
			}
		}
		r.errs = cueerrors.Append(r.errs, r.withHint(e))
	}
}

// disjunctionError folds CUE's "N errors in empty disjunction" and its
// "conflicting values A and B" details (a value that is none of a list of
// literals, such as an unknown target OS) into one line: the value given,
// the closest allowed one and all of them, at the profile's line. It
// returns nil when the details are not all literal conflicts.
func (r *resolver) disjunctionError(path string, errs []cueerrors.Error) cueerrors.Error {
	count := map[string]int{}
	conflicts := 0
	var positions []token.Pos
	for _, e := range errs {
		format, args := e.Msg()
		if !strings.HasPrefix(format, "conflicting values") {
			if strings.Contains(format, "errors in empty disjunction") {
				continue
			}
			return nil
		}
		if len(args) < 2 {
			return nil
		}
		conflicts++
		a, b := fmt.Sprint(args[0]), fmt.Sprint(args[1])
		count[a]++
		if b != a {
			count[b]++
		}
		positions = append(positions, cueerrors.Positions(e)...)
	}
	if conflicts < 2 {
		return nil
	}
	given := ""
	var allowed []string
	for v, n := range count {
		if n == conflicts && given == "" {
			given = v
		} else {
			allowed = append(allowed, v)
		}
	}
	if given == "" || len(allowed) == 0 {
		return nil
	}
	slices.Sort(allowed)
	var pos token.Pos
	for _, p := range positions {
		if p.IsValid() && p.Filename() == r.p.File {
			pos = p
			break
		}
		if !pos.IsValid() {
			pos = p
		}
	}
	hint := ""
	unquoted := make([]string, len(allowed))
	for i, a := range allowed {
		unquoted[i] = strings.Trim(a, `"`)
	}
	if best := suggest.Closest(strings.Trim(given, `"`), unquoted); best != "" {
		hint = fmt.Sprintf(" did you mean %q?", best)
	}
	return cueerrors.Newf(pos, "%s: %s is not allowed;%s allowed values: %s", path, given, hint, strings.Join(allowed, ", "))
}

// withHint turns CUE's "field not allowed" (a typo in a closed struct)
// into a message that says what to write instead: the closest allowed
// field name, and the list of allowed ones.
func (r *resolver) withHint(e cueerrors.Error) cueerrors.Error {
	format, _ := e.Msg()
	path := e.Path()
	if !strings.Contains(format, "field not allowed") || len(path) < 2 || !r.cur.Exists() {
		return e
	}
	bad := path[len(path)-1]
	schema, shown := r.schemaFor(path[:len(path)-1])
	if !schema.Exists() {
		return e
	}
	iter, err := schema.Fields(cue.Optional(true))
	if err != nil {
		return e
	}
	var allowed []string
	for iter.Next() {
		allowed = append(allowed, iter.Selector().Unquoted())
	}
	slices.Sort(allowed)
	hint := "no fields are allowed here"
	if len(allowed) > 0 {
		hint = "allowed fields here: " + strings.Join(allowed, ", ")
	}
	if best := suggest.Closest(bad, allowed); best != "" {
		hint = fmt.Sprintf("did you mean %q? %s", best, hint)
	}
	// Prefer the position in the profile file.
	pos := e.Position()
	for _, p := range cueerrors.Positions(e) {
		if p.IsValid() && p.Filename() == r.p.File {
			pos = p
			break
		}
		if !pos.IsValid() {
			pos = p
		}
	}
	return cueerrors.Newf(pos, "%s.%s: field not allowed; %s", shown, bad, hint)
}

// schemaFor returns the schema value that constrains the struct at path
// (in the loaded or composed package) and the path to show the user.
func (r *resolver) schemaFor(path []string) (cue.Value, string) {
	sels := func(ps []string) []cue.Selector {
		out := make([]cue.Selector, 0, len(ps))
		for _, p := range ps {
			if _, err := strconv.Atoi(p); err == nil {
				out = append(out, cue.AnyIndex)
			} else {
				out = append(out, cue.Str(p))
			}
		}
		return out
	}
	joined := strings.Join(path, ".")
	switch {
	case path[0] == "profile":
		return r.cur.LookupPath(cue.MakePath(append([]cue.Selector{cue.Def("#Profile")}, sels(path[1:])...)...)), joined
	case len(path) >= 3 && path[0] == "generated" && path[1] == "defaults" && path[2] == "engine":
		rest := path[3:]
		v := r.cur.LookupPath(cue.MakePath(append([]cue.Selector{cue.Str("engines"), cue.Str(r.p.Engine.Name), cue.Def("#Config")}, sels(rest)...)...))
		return v, strings.Join(append([]string{"profile.engine.config"}, rest...), ".")
	case len(path) >= 4 && path[0] == "generated" && path[1] == "defaults" && path[2] == "plugins":
		rest := path[4:]
		v := r.cur.LookupPath(cue.MakePath(append([]cue.Selector{cue.Str("plugins"), cue.Str(path[3]), cue.Def("#Config")}, sels(rest)...)...))
		return v, strings.Join(append([]string{"profile.plugins." + path[3] + ".config"}, rest...), ".")
	}
	return cue.Value{}, joined
}

// profileDecl is the part of #Profile the generator reads into Go.
type profileDecl struct {
	Name        string                `json:"name"`
	Description string                `json:"description"`
	Binary      string                `json:"binary"`
	Dialect     string                `json:"dialect"`
	Engine      struct{ Kind string } `json:"engine"`
	Targets     []Target              `json:"targets"`
}

type metaDecl struct {
	GoImport  string   `json:"goImport"`
	OS        []string `json:"os"`
	Abilities []string `json:"abilities"`
	Order     int      `json:"order"`
	Conflicts []string `json:"conflicts"`
	Requires  []string `json:"requires"`
	Available bool     `json:"available"`
	Reason    string   `json:"reason"`
}

func (r *resolver) resolve(name string) {
	// Stray top-level fields: most likely a misspelt `profile:`.
	iter, err := r.root.Fields()
	if err != nil {
		r.addErr(err)
		return
	}
	for iter.Next() {
		if !slices.Contains(topLevel, iter.Selector().String()) {
			r.errorf(iter.Value().Pos(), "unknown top-level field %q: a profile file defines only `profile: {...}` (allowed: %s)",
				iter.Selector().String(), strings.Join(topLevel, ", "))
		}
	}
	pv := r.root.LookupPath(cue.ParsePath("profile"))
	if err := pv.Validate(cue.Concrete(true)); err != nil {
		r.addErr(err)
	}
	if err := r.root.Validate(); err != nil {
		r.addErr(err)
	}
	if r.errs != nil {
		return
	}
	var decl profileDecl
	if err := pv.Decode(&decl); err != nil {
		r.addErr(err)
		return
	}
	p := r.p
	p.Name, p.Description, p.Binary, p.Dialect, p.Targets = decl.Name, decl.Description, decl.Binary, decl.Dialect, decl.Targets
	if decl.Name != name {
		r.errorf(declPos(pv.LookupPath(cue.ParsePath("name"))), "profile.name is %q but the file is %s: rename one so they match", decl.Name, p.File)
	}

	dialect := r.root.LookupPath(cue.MakePath(cue.Str("dialects"), cue.Str(decl.Dialect)))
	if !dialect.Exists() {
		r.errorf(declPos(pv.LookupPath(cue.ParsePath("dialect"))), "profile.dialect: unknown dialect %q; known dialects: %s",
			decl.Dialect, strings.Join(r.keys("dialects"), ", "))
	} else if _, ok := dialectConsts[task.Dialect(decl.Dialect)]; !ok {
		r.errorf(declPos(dialect), "dialects.%s: no task.Dialect constant names this dialect: add one to task/dialect.go and gen/emit.go, so that components are told it", decl.Dialect)
	}
	oses := map[string]bool{}
	for _, t := range decl.Targets {
		oses[t.OS] = true
	}
	if dos := dialect.LookupPath(cue.ParsePath("os")); dialect.Exists() && dos.Exists() {
		var allowed []string
		if err := dos.Decode(&allowed); err == nil {
			for _, t := range decl.Targets {
				if !slices.Contains(allowed, t.OS) {
					r.errorf(r.targetPos(pv, t), "profile.targets: dialect %s is for %s tasks, not %s: remove the target or choose the dialect for %s",
						decl.Dialect, strings.Join(allowed, ", "), t.OS, t.OS)
				}
			}
		}
	}

	// Engine.
	kindPos := declPos(pv.LookupPath(cue.ParsePath("engine.kind")))
	engine, emeta, ok := r.meta("engines", decl.Engine.Kind, kindPos, "profile.engine.kind", "engine")
	if ok {
		p.Engine = Component{Name: decl.Engine.Kind, GoImport: emeta.GoImport}
		for _, t := range decl.Targets {
			if !slices.Contains(emeta.OS, t.OS) {
				r.errorf(r.targetPos(pv, t), "profile.targets: engine %s does not support %s (it supports %s): remove the target or choose another engine",
					decl.Engine.Kind, t.OS, strings.Join(emeta.OS, ", "))
			}
		}
		if dialect.Exists() && !engine.LookupPath(cue.MakePath(cue.Str("payload"), cue.Str(decl.Dialect))).Exists() {
			r.errorf(kindPos, "profile.engine.kind: engine %s does not speak dialect %q (it speaks %s): change profile.dialect or the engine",
				decl.Engine.Kind, decl.Dialect, strings.Join(keysOf(engine.LookupPath(cue.ParsePath("payload"))), ", "))
		}
	}

	// Plugins.
	pluginsV := pv.LookupPath(cue.ParsePath("plugins"))
	chosen := keysOf(pluginsV)
	metas := map[string]cue.Value{}
	for _, pn := range chosen {
		pos := declPos(pluginsV.LookupPath(cue.MakePath(cue.Str(pn))))
		mv, m, ok := r.meta("plugins", pn, pos, "profile.plugins."+pn, "plugin")
		if !ok {
			continue
		}
		metas[pn] = mv
		p.Plugins = append(p.Plugins, Component{Name: pn, GoImport: m.GoImport, Order: m.Order})
		for o := range oses {
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
		for _, a := range m.Requires {
			if emeta != nil && !slices.Contains(emeta.Abilities, a) {
				r.errorf(pos, "profile.plugins.%s: plugin %s needs engine ability %q, which engine %s lacks: remove the plugin or choose another engine",
					pn, pn, a, decl.Engine.Kind)
			}
		}
	}
	slices.SortFunc(p.Plugins, func(a, b Component) int {
		return cmp.Or(cmp.Compare(a.Order, b.Order), cmp.Compare(a.Name, b.Name))
	})
	if r.errs != nil {
		return
	}

	src := r.composeSource(engine, metas, dialect)
	if r.errs != nil {
		return
	}
	// The composition is built in the same package as the schemas (not
	// compiled separately with cue.Scope): jsonschema.Generate only follows
	// references within one instance, and otherwise exports a referenced
	// field's type as `true`.
	composedFile, err := parser.ParseFile(generatedFile, "package "+cuePackage+"\n\ngenerated: {\n"+src+"}\n")
	if err != nil {
		r.addErr(fmt.Errorf("internal error: composed CUE does not parse: %w\n%s", err, src))
		return
	}
	v, errs := loadInstance(r.ctx, r.rootDir, r.files, composedFile)
	r.cur = v
	if errs != nil {
		r.addErr(errs)
		return
	}
	r.exportAll(v.LookupPath(cue.ParsePath("generated")))
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
			r.errorf(mv.Pos(), "%s %s declares no %s: add `%s: {...}` to its metadata in schemas/", what, name, def, def)
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

// provided is one payload field provided by an engine or plugin.
type provided struct {
	path     string
	provider string // "engine native", "plugin env", "ignored"
	ref      string // CUE expression of the field's type
	required bool
	pos      token.Pos
}

// composeSource checks the payload fragments for clashes and returns the
// CUE source (compiled in the scope of the loaded package) of:
//
//	#Payload         the composed, closed payload schema
//	#ProfileConfig   workerConfig plus the engine's and plugins' sections
//	defaults         the profile's default config
//
// It becomes the body of the top-level field `generated`.
func (r *resolver) composeSource(engine cue.Value, metas map[string]cue.Value, dialect cue.Value) string {
	p := r.p
	dq := strconv.Quote(p.Dialect)
	var fields []provided
	byPath := map[string]provided{}
	dialectFields := map[string]string{}
	iter, _ := dialect.LookupPath(cue.ParsePath("fields")).Fields()
	for iter.Next() {
		s, _ := iter.Value().String()
		dialectFields[iter.Selector().Unquoted()] = s
	}
	add := func(frag cue.Value, provider, base string, checkDialect bool) {
		iter, err := frag.Fields()
		if err != nil {
			return
		}
		for iter.Next() {
			fp := iter.Selector().Unquoted()
			if !iter.Value().LookupPath(cue.ParsePath("type")).Exists() {
				r.errorf(iter.Value().Pos(), "%s: payload field %q has no `type`", provider, fp)
				continue
			}
			for _, k := range keysOf(iter.Value()) {
				if k != "type" && k != "required" {
					r.errorf(iter.Value().Pos(), "%s: payload field %q: unknown attribute %q (allowed: required, type)", provider, fp, k)
				}
			}
			req, _ := iter.Value().LookupPath(cue.ParsePath("required")).Default()
			required, _ := req.Bool()
			f := provided{
				path:     fp,
				provider: provider,
				ref:      base + "." + strconv.Quote(fp) + ".type",
				required: required,
				pos:      declPos(iter.Value()),
			}
			if checkDialect {
				if _, ok := dialectFields[fp]; !ok {
					r.errorf(f.pos, "%s provides payload field %q, which dialect %s does not define: add it to dialects.%s.fields in schemas/dialects.cue or remove it from the fragment",
						provider, fp, p.Dialect, p.Dialect)
					continue
				}
			}
			for _, other := range fields {
				if other.path == fp || strings.HasPrefix(fp, other.path+".") || strings.HasPrefix(other.path, fp+".") {
					r.errs = cueerrors.Append(r.errs, cueerrors.Newf(f.pos,
						"payload field %q of dialect %s is defined by both %s (%s) and %s: two fragments may not define the same field; remove one of the plugins from the profile or the field from one fragment",
						fp, p.Dialect, other.provider, other.pos, provider))
				}
			}
			fields = append(fields, f)
			byPath[fp] = f
		}
	}
	// References are written as selector paths with quoted labels, never
	// as index expressions or through let aliases: jsonschema.Generate
	// exports a type reached that way without its validators
	// (`int & >=1` becomes `{"type": "integer"}`).
	add(engine.LookupPath(cue.MakePath(cue.Str("payload"), cue.Str(p.Dialect))), "engine "+p.Engine.Name,
		"engines."+strconv.Quote(p.Engine.Name)+".payload."+dq, true)
	for _, c := range p.Plugins {
		frag := metas[c.Name].LookupPath(cue.MakePath(cue.Str("payload"), cue.Str(p.Dialect)))
		if frag.Exists() {
			add(frag, "plugin "+c.Name, "plugins."+strconv.Quote(c.Name)+".payload."+dq, true)
		}
	}
	add(dialect.LookupPath(cue.ParsePath("ignored")), "dialect "+p.Dialect+" (ignored field)",
		"dialects."+dq+".ignored", false)

	// Unsupported: dialect fields nobody provides.
	for fp, feature := range dialectFields {
		if _, ok := byPath[fp]; !ok {
			p.Unsupported = append(p.Unsupported, Unsupported{Path: fp, Feature: feature})
		}
	}
	slices.SortFunc(p.Unsupported, func(a, b Unsupported) int { return cmp.Compare(a.Path, b.Path) })
	// An unsupported feature flag may still be written false: upstream's
	// schemas accept it, and it asks for nothing. (Every `features` member
	// of both dialects is a boolean.)
	for _, u := range p.Unsupported {
		if strings.HasPrefix(u.Path, "features.") {
			fields = append(fields, provided{path: u.Path, provider: "dialect " + p.Dialect + " (feature this profile lacks, off)", ref: "false"})
		}
	}

	// Composite objects (`features`, `logs`) exist whenever the dialect has
	// members for them, even if no linked plugin provides one: upstream
	// accepts an empty `features: {}`.
	composite := map[string][]provided{}
	for fp := range dialectFields {
		if parent, _, ok := strings.Cut(fp, "."); ok {
			composite[parent] = composite[parent]
		}
	}
	var top []provided
	for _, f := range fields {
		if parent, _, ok := strings.Cut(f.path, "."); ok {
			composite[parent] = append(composite[parent], f)
		} else {
			top = append(top, f)
		}
	}
	for parent := range composite {
		top = append(top, provided{path: parent})
	}
	slices.SortFunc(top, func(a, b provided) int { return cmp.Compare(a.path, b.path) })

	var b strings.Builder
	b.WriteString("#Payload: close({\n")
	for _, f := range top {
		if f.ref == "" { // composite object
			members := composite[f.path]
			slices.SortFunc(members, func(a, b provided) int { return cmp.Compare(a.path, b.path) })
			fmt.Fprintf(&b, "\t%s?: close({\n", strconv.Quote(f.path))
			for _, m := range members {
				fmt.Fprintf(&b, "\t\t%s%s: %s\n", strconv.Quote(strings.TrimPrefix(m.path, f.path+".")), marker(m.required), m.ref)
			}
			b.WriteString("\t})\n")
			continue
		}
		fmt.Fprintf(&b, "\t%s%s: %s\n", strconv.Quote(f.path), marker(f.required), f.ref)
	}
	b.WriteString("})\n\n")

	// #PluginsConfig and pluginDefaults sit outside #ProfileConfig so that
	// `plugins` still names the top-level plugin metadata there.
	eq := strconv.Quote(p.Engine.Name)
	b.WriteString("#PluginsConfig: close({\n")
	for _, c := range sortedByName(p.Plugins) {
		q := strconv.Quote(c.Name)
		fmt.Fprintf(&b, "\t%s?: plugins.%s.#Config\n", q, q)
	}
	b.WriteString("})\n\n")
	b.WriteString("#ProfileConfig: {\n\tworkerConfig\n")
	fmt.Fprintf(&b, "\tengine?: engines.%s.#Config\n", eq)
	b.WriteString("\tplugins?: #PluginsConfig\n}\n\n")
	b.WriteString("pluginDefaults: {\n")
	for _, c := range sortedByName(p.Plugins) {
		q := strconv.Quote(c.Name)
		fmt.Fprintf(&b, "\t%s: plugins.%s.#Defaults & plugins.%s.#Config & profile.plugins.%s.config\n", q, q, q, q)
	}
	b.WriteString("}\n\n")
	b.WriteString("defaults: #ProfileConfig & workerDefaults & {\n")
	fmt.Fprintf(&b, "\tengine: engines.%s.#Defaults & engines.%s.#Config & profile.engine.config\n", eq, eq)
	b.WriteString("\tplugins: pluginDefaults\n}\n")
	return b.String()
}
func marker(required bool) string {
	if required {
		return "!"
	}
	return "?"
}

func sortedByName(cs []Component) []Component {
	out := slices.Clone(cs)
	slices.SortFunc(out, func(a, b Component) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// exportAll exports the JSON Schemas, the default config and profile.json.
func (r *resolver) exportAll(composed cue.Value) {
	p := r.p
	var err error
	p.PayloadSchema, err = r.jsonSchema(composed.LookupPath(cue.ParsePath("#Payload")),
		"workergen "+p.Name+" task payload ("+p.Dialect+")")
	r.addErr(err)
	p.ConfigSchema, err = r.jsonSchema(composed.LookupPath(cue.ParsePath("#ProfileConfig")),
		"workergen "+p.Name+" worker config")
	r.addErr(err)

	defaults := composed.LookupPath(cue.ParsePath("defaults"))
	if err := defaults.Validate(cue.Concrete(true)); err != nil {
		r.addErr(err)
		return
	}
	p.DefaultConfig, err = indentJSON(defaults)
	if err != nil {
		r.addErr(err)
		return
	}
	engineCfg := defaults.LookupPath(cue.ParsePath("engine"))
	if p.Engine.Config, err = compactJSON(engineCfg); err != nil {
		r.addErr(err)
		return
	}
	for i, c := range p.Plugins {
		v := defaults.LookupPath(cue.MakePath(cue.Str("plugins"), cue.Str(c.Name)))
		if p.Plugins[i].Config, err = compactJSON(v); err != nil {
			r.addErr(err)
			return
		}
	}
	doc := struct {
		Name        string        `json:"name"`
		Description string        `json:"description"`
		Source      string        `json:"source"`
		Binary      string        `json:"binary"`
		Dialect     string        `json:"dialect"`
		Engine      Component     `json:"engine"`
		Plugins     []Component   `json:"plugins"`
		Targets     []Target      `json:"targets"`
		Unsupported []Unsupported `json:"unsupported"`
	}{p.Name, p.Description, p.File, p.Binary, p.Dialect, p.Engine, nonNil(p.Plugins), p.Targets, nonNil(p.Unsupported)}
	p.ProfileJSON, err = marshalIndent(doc)
	r.addErr(err)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// jsonSchema exports v with cuelang.org/go/encoding/jsonschema.Generate
// (draft 2020-12) and adds a title. Generate's output is used as is; the
// golden tests and the corpus test in this package check that it accepts
// and rejects what the CUE (and upstream) schemas do.
func (r *resolver) jsonSchema(v cue.Value, title string) ([]byte, error) {
	expr, err := jsonschema.Generate(v, &jsonschema.GenerateConfig{NamesFunc: namesFunc})
	if err != nil {
		return nil, err
	}
	js := r.ctx.BuildExpr(expr)
	if err := js.Err(); err != nil {
		return nil, err
	}
	js = js.FillPath(cue.ParsePath("title"), title)
	return indentJSON(js)
}

// namesFunc names each $defs entry after the CUE path it was exported
// from, e.g. "engines.native.payload.generic-worker-posix.command.type":
// unique, stable, and it says where the constraint is declared.
func namesFunc(refs []*jsonschema.CUERef) {
	for _, ref := range refs {
		var parts []string
		for _, s := range ref.Path.Selectors() {
			if s.LabelType() == cue.StringLabel {
				parts = append(parts, s.Unquoted())
			} else {
				parts = append(parts, strings.TrimPrefix(s.String(), "#"))
			}
		}
		ref.Name = strings.Join(parts, ".")
	}
}

func indentJSON(v cue.Value) ([]byte, error) {
	raw, err := v.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return nil, fmt.Errorf("indenting JSON: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

func compactJSON(v cue.Value) (json.RawMessage, error) {
	raw, err := v.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fmt.Errorf("compacting JSON: %w", err)
	}
	return buf.Bytes(), nil
}

func marshalIndent(v any) ([]byte, error) {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// distPath is the slash path of a profile's output directory.
func distPath(name string) string { return path.Join(DistDir, name) }
