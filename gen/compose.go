package gen

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/format"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
)

// provided is one payload field provided by an engine or plugin.
type provided struct {
	path     string
	provider string   // "engine native", "plugin env", "dialect ... (ignored field)"
	ref      ast.Expr // the field's type: a reference to the fragment, or a literal
	required bool
	pos      token.Pos
	// doc is the field's description: the doc comment on the fragment's
	// entry (`image: {...}`), carried onto the composed field so that the
	// JSON Schema gives it beside the $ref to the type.
	doc string
}

// compose builds the profile's payload schema and config from the
// engine's and plugins' metadata, then exports them (exportAll). The
// composition is CUE in the same package as the schemas, under the
// top-level field `generated`:
//
//	#Payload         the composed, closed payload schema
//	#ProfileConfig   workerConfig plus the engine's and plugins' sections
//	defaults         the profile's default config
func (r *resolver) compose(dialect cue.Value) {
	table := r.dialectFields(dialect)
	fields := r.linkedFields()
	r.checkClashes(fields)
	fields = append(fields, r.unsupported(table, fields)...)
	if r.errs != nil {
		return
	}
	decls := append([]ast.Decl{payloadDecl(fields, table, r.objectDocs(dialect))}, configDecls(r.p, r.componentDoc)...)
	file, err := composedFile(decls)
	if err != nil {
		r.addErr(err)
		return
	}
	// The composition is built in the same package as the schemas (not
	// compiled separately with cue.Scope): jsonschema.Generate only follows
	// references within one instance, and otherwise exports a referenced
	// field's type as `true`.
	v, errs := loadInstance(r.ctx, r.files, file)
	r.cur = v
	if errs != nil {
		r.addErr(errs)
		return
	}
	r.exportAll(v.LookupPath(cue.ParsePath("generated")))
}

// dialectFields returns every leaf field of the dialect with what provides
// it: derived from the payload fragments every engine and plugin of the
// schemas declares for the dialect ("engine native", "plugin env"; "plugin
// a or plugin b" when several do), plus the dialect's `unimplemented`
// entries. An unimplemented entry that a component does provide is an
// error.
func (r *resolver) dialectFields(dialect cue.Value) map[string]string {
	name := r.p.Dialect
	byPath := map[string][]string{}
	for _, section := range []string{"engines", "plugins"} {
		for _, c := range r.keys(section) {
			frag := r.root.LookupPath(cue.MakePath(cue.Str(section), cue.Str(c), cue.Str("payload"), cue.Str(name)))
			for _, fp := range keysOf(frag) {
				byPath[fp] = append(byPath[fp], strings.TrimSuffix(section, "s")+" "+c)
			}
		}
	}
	table := map[string]string{}
	for fp, providers := range byPath {
		table[fp] = strings.Join(providers, " or ")
	}
	iter, _ := dialect.LookupPath(cue.ParsePath("unimplemented")).Fields()
	for iter != nil && iter.Next() {
		fp := iter.Selector().Unquoted()
		if by, ok := table[fp]; ok {
			r.errorf(declPos(iter.Value()), "dialects.%s.unimplemented lists %q, which %s provides: remove the entry", name, fp, by)
			continue
		}
		table[fp], _ = iter.Value().String()
	}
	return table
}

// linkedFields returns the payload fields the profile's engine and plugins
// provide for its dialect, then the fields the dialect ignores.
func (r *resolver) linkedFields() []provided {
	d := r.p.Dialect
	fields := r.fragmentFields("engine "+r.p.Engine.Name, "engines", r.p.Engine.Name, "payload", d)
	for _, c := range r.p.Plugins {
		fields = append(fields, r.fragmentFields("plugin "+c.Name, "plugins", c.Name, "payload", d)...)
	}
	return append(fields, r.fragmentFields("dialect "+d+" (ignored field)", "dialects", d, "ignored")...)
}

// fragmentFields reads the payload fragment at path (labels from the
// package root) and checks each field's attributes. An absent fragment
// has no fields.
func (r *resolver) fragmentFields(provider string, path ...string) []provided {
	sels := make([]cue.Selector, len(path))
	for i, s := range path {
		sels[i] = cue.Str(s)
	}
	iter, err := r.root.LookupPath(cue.MakePath(sels...)).Fields()
	if err != nil {
		return nil
	}
	var out []provided
	for iter.Next() {
		fp, fv := iter.Selector().Unquoted(), iter.Value()
		if !fv.LookupPath(cue.ParsePath("type")).Exists() {
			r.errorf(fv.Pos(), "%s: payload field %q has no `type`", provider, fp)
			continue
		}
		for _, k := range keysOf(fv) {
			if k != "type" && k != "required" {
				r.errorf(fv.Pos(), "%s: payload field %q: unknown attribute %q (allowed: required, type)", provider, fp, k)
			}
		}
		req, _ := fv.LookupPath(cue.ParsePath("required")).Default()
		required, _ := req.Bool()
		// References are written as selector paths with quoted labels,
		// never as index expressions or through let aliases:
		// jsonschema.Generate exports a type reached that way without its
		// validators (`int & >=1` becomes `{"type": "integer"}`).
		labels := append(slices.Clone(path[1:]), fp, "type")
		out = append(out, provided{path: fp, provider: provider, ref: ref(path[0], labels...), required: required, pos: declPos(fv), doc: docText(fv)})
	}
	return out
}

// checkClashes reports two fields that are the same or one inside the
// other.
func (r *resolver) checkClashes(fields []provided) {
	for i, f := range fields {
		for _, other := range fields[:i] {
			if other.path == f.path || strings.HasPrefix(f.path, other.path+".") || strings.HasPrefix(other.path, f.path+".") {
				r.errs = cueerrors.Append(r.errs, cueerrors.Newf(f.pos,
					"payload field %q of dialect %s is defined by both %s (%s) and %s: two fragments may not define the same field; remove one of the plugins from the profile or the field from one fragment",
					f.path, r.p.Dialect, other.provider, other.pos, f.provider))
			}
		}
	}
}

// unsupported sets r.p.Unsupported to the dialect's fields no linked
// component provides, sorted by path, and returns the schema fields that
// still accept those of them that are features as false: upstream's
// schemas accept a feature flag written false, and it asks for nothing.
// (Every `features` member of the dialects is a boolean.)
func (r *resolver) unsupported(table map[string]string, fields []provided) []provided {
	have := map[string]bool{}
	for _, f := range fields {
		have[f.path] = true
	}
	var off []provided
	for _, fp := range slices.Sorted(maps.Keys(table)) {
		if have[fp] {
			continue
		}
		r.p.Unsupported = append(r.p.Unsupported, Unsupported{Path: fp, Feature: table[fp]})
		if strings.HasPrefix(fp, "features.") {
			off = append(off, provided{path: fp, provider: "dialect " + r.p.Dialect + " (feature this profile lacks, off)", ref: ast.NewBool(false),
				doc: "Not available with this profile (it needs " + table[fp] + "); only false is accepted."})
		}
	}
	return off
}

// payloadDecl returns `#Payload: close({...})`: the fields, each optional
// unless required, those with a dot in their path grouped in their parent
// object. A parent object (`features`, `logs`) exists whenever the dialect
// has members for it, even if no linked component provides one: upstream
// accepts an empty `features: {}`.
//
// objectDocs are the descriptions of those parent objects (the dialect's
// `objects`).
func payloadDecl(fields []provided, table map[string]string, objectDocs map[string]string) ast.Decl {
	members := map[string][]provided{}
	for fp := range table {
		if parent, _, ok := strings.Cut(fp, "."); ok {
			members[parent] = members[parent]
		}
	}
	var top []provided
	for _, f := range fields {
		if parent, member, ok := strings.Cut(f.path, "."); ok {
			f.path = member
			members[parent] = append(members[parent], f)
		} else {
			top = append(top, f)
		}
	}
	for parent, ms := range members {
		top = append(top, provided{path: parent, ref: closedStruct(ms), doc: objectDocs[parent]})
	}
	return field("#Payload", closedStruct(top))
}

// closedStruct returns close({...}) of the fields, sorted by path, each
// with its doc comment.
func closedStruct(fields []provided) ast.Expr {
	slices.SortFunc(fields, func(a, b provided) int { return cmp.Compare(a.path, b.path) })
	st := &ast.StructLit{}
	for _, f := range fields {
		marker := token.OPTION
		if f.required {
			marker = token.NOT
		}
		st.Elts = append(st.Elts, withDoc(&ast.Field{Label: ast.NewString(f.path), Constraint: marker, Value: f.ref}, f.doc))
	}
	return ast.NewCall(ast.NewIdent("close"), st)
}

// configDecls returns the config schema and defaults of the profile:
//
//	#PluginsConfig: close({"<plugin>"?: plugins."<plugin>".#Config, ...})
//	#ProfileConfig: {workerConfig, engine?: engines."<engine>".#Config, plugins?: #PluginsConfig}
//	pluginDefaults: {"<plugin>": #Defaults & #Config & the profile's config, ...}
//	defaults: #ProfileConfig & workerDefaults & {engine: ..., plugins: pluginDefaults}
//
// #PluginsConfig and pluginDefaults sit outside #ProfileConfig so that
// `plugins` still names the top-level plugin metadata there.
//
// The engine and plugin sections get doc comments from doc(section, name):
// what the component does.
func configDecls(p *Profile, doc func(section, name string) string) []ast.Decl {
	var defaults []any
	sections := &ast.StructLit{}
	for _, c := range sortedByName(p.Plugins) {
		sections.Elts = append(sections.Elts, withDoc(&ast.Field{Label: ast.NewString(c.Name), Constraint: token.OPTION,
			Value: ref("plugins", c.Name, "#Config")}, "Settings of plugin "+c.Name+" ("+doc("plugins", c.Name)+")."))
		defaults = append(defaults, ast.NewString(c.Name), ast.NewBinExpr(token.AND,
			ref("plugins", c.Name, "#Defaults"), ref("plugins", c.Name, "#Config"), ref("profile", "plugins", c.Name, "config")))
	}
	e := p.Engine.Name
	return []ast.Decl{
		field("#PluginsConfig", ast.NewCall(ast.NewIdent("close"), sections)),
		field("#ProfileConfig", &ast.StructLit{Elts: []ast.Decl{
			&ast.EmbedDecl{Expr: ast.NewIdent("workerConfig")},
			withDoc(&ast.Field{Label: ast.NewIdent("engine"), Constraint: token.OPTION, Value: ref("engines", e, "#Config")},
				"Settings of the "+e+" engine ("+doc("engines", e)+")."),
			withDoc(&ast.Field{Label: ast.NewIdent("plugins"), Constraint: token.OPTION, Value: ast.NewIdent("#PluginsConfig")},
				"Settings of the plugins, one section per plugin, keyed by its name."),
		}}),
		field("pluginDefaults", ast.NewStruct(defaults...)),
		field("defaults", ast.NewBinExpr(token.AND, ast.NewIdent("#ProfileConfig"), ast.NewIdent("workerDefaults"), ast.NewStruct(
			"engine", ast.NewBinExpr(token.AND, ref("engines", e, "#Defaults"), ref("engines", e, "#Config"), ref("profile", "engine", "config")),
			"plugins", ast.NewIdent("pluginDefaults"),
		))),
	}
}

// composedFile returns `generated: {decls}` as a file of the schemas'
// package, printed and parsed again so that its references resolve as in
// a file written by hand and errors point into generatedFile.
func composedFile(decls []ast.Decl) (*ast.File, error) {
	f := &ast.File{Decls: []ast.Decl{
		&ast.Package{Name: ast.NewIdent(cuePackage)},
		field("generated", &ast.StructLit{Elts: decls}),
	}}
	src, err := format.Node(f)
	if err != nil {
		return nil, fmt.Errorf("internal error: printing the composed CUE: %w", err)
	}
	parsed, err := parser.ParseFile(generatedFile, src, parser.ParseComments)
	if err != nil {
		return nil, fmt.Errorf("internal error: composed CUE does not parse: %w\n%s", err, src)
	}
	return parsed, nil
}

// withDoc gives f the doc comment text (nothing when text is empty).
func withDoc(f *ast.Field, text string) *ast.Field {
	if text == "" {
		return f
	}
	cg := &ast.CommentGroup{Doc: true}
	for _, line := range strings.Split(text, "\n") {
		cg.List = append(cg.List, &ast.Comment{Text: strings.TrimRight("// "+line, " ")})
	}
	ast.AddComment(f, cg)
	return f
}

// ref returns the reference root.l1.l2...: definitions as identifiers,
// other labels quoted.
func ref(root string, labels ...string) ast.Expr {
	var x ast.Expr = ast.NewIdent(root)
	for _, l := range labels {
		var sel ast.Label = ast.NewString(l)
		if strings.HasPrefix(l, "#") {
			sel = ast.NewIdent(l)
		}
		x = &ast.SelectorExpr{X: x, Sel: sel}
	}
	return x
}

// field returns the regular field `label: value` (label an identifier).
func field(label string, value ast.Expr) *ast.Field {
	return &ast.Field{Label: ast.NewIdent(label), Value: value}
}

func sortedByName(cs []Component) []Component {
	out := slices.Clone(cs)
	slices.SortFunc(out, func(a, b Component) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
