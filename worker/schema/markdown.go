package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Page describes the reference page Markdown renders: which schema it is
// and what the profile adds to it.
type Page struct {
	// Title is the page's heading, e.g.
	// "workergen-linux-native task payload".
	Title string
	// Intro is the paragraph under the title (Markdown).
	Intro string
	// Defaults is the profile's default config (config.defaults.json) for
	// a config page: each field's default is looked up in it. Nil for a
	// payload page, whose defaults are in the descriptions.
	Defaults []byte
	// Unsupported lists the payload fields of the dialect that the
	// profile does not implement, each with what would provide it.
	Unsupported []UnsupportedField
}

// UnsupportedField is a dialect's payload field (dotted path, e.g.
// "features.loopbackVideo") that a profile lacks, and the engine or plugin
// that would provide it.
type UnsupportedField struct{ Path, Feature string }

// Profile is what the pages say about the profile, from the generator's
// Profile or the binary's Build.
type Profile struct {
	Name, Binary, Dialect, Engine string
	Plugins                       []string
	Unsupported                   []UnsupportedField
	// DefaultConfig is config.defaults.json.
	DefaultConfig []byte
}

// PayloadPage is the page of the profile's task payload reference
// (dist/<profile>/payload.md, `<binary> schema payload --markdown`).
func PayloadPage(p Profile) Page {
	return Page{
		Title: p.Binary + ": task payload reference",
		Intro: fmt.Sprintf("The payload of a task for a worker of profile %s: dialect %s, engine %s, plugins %s. "+
			"Generated from the profile's payload JSON Schema (`%s schema payload`), which the worker checks every task against; "+
			"a field not listed here is malformed-payload.", p.Name, p.Dialect, p.Engine, plugins(p.Plugins), p.Binary),
		Unsupported: p.Unsupported,
	}
}

// ConfigPage is the page of the profile's worker config reference
// (`<binary> schema config --markdown`).
func ConfigPage(p Profile) Page {
	return Page{
		Title: p.Binary + ": worker config reference",
		Intro: fmt.Sprintf("The worker config of profile %s (engine %s, plugins %s): every field is optional in the file, "+
			"which is merged over the defaults shown. Generated from the profile's config JSON Schema (`%s schema config`).",
			p.Name, p.Engine, plugins(p.Plugins), p.Binary),
		Defaults: p.DefaultConfig,
	}
}

func plugins(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(slices.Values(names)), ", ")
}

// Markdown renders a reference page of the JSON Schema doc (as the
// generator exports it: draft 2020-12, $defs and $ref, properties with
// descriptions): every field as a heading with its dotted path
// (`artifacts[].name`, `env.<name>`, `features.chainOfTrust`), its type
// and constraints, whether it is required, its default (config pages)
// and its description; then the dialect's fields the profile does not
// implement. The output depends only on its inputs.
func Markdown(doc []byte, page Page) ([]byte, error) {
	var root map[string]any
	if err := json.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("markdown: parsing the schema: %w", err)
	}
	r := &renderer{root: root, seen: map[string]string{}}
	r.defs, _ = root["$defs"].(map[string]any)
	if page.Defaults != nil {
		if err := json.Unmarshal(page.Defaults, &r.defaults); err != nil {
			return nil, fmt.Errorf("markdown: parsing the default config: %w", err)
		}
	}
	fmt.Fprintf(&r.b, "# %s\n\n", page.Title)
	if page.Intro != "" {
		fmt.Fprintf(&r.b, "%s\n\n", strings.TrimSpace(page.Intro))
	}
	r.b.WriteString("## Fields\n")
	r.object(root, "", nil)
	if len(page.Unsupported) > 0 {
		r.b.WriteString("\n## Not available with this profile\n\n")
		r.b.WriteString("The payload format defines these fields, but this profile has no engine or plugin for them: a task using one is malformed-payload (a feature flag may still be given as false).\n\n")
		for _, u := range page.Unsupported {
			fmt.Fprintf(&r.b, "- `%s`: needs %s\n", u.Path, u.Feature)
		}
	}
	return r.b.Bytes(), nil
}

type renderer struct {
	root, defs map[string]any
	defaults   any
	seen       map[string]string // $ref -> path of the field it was first rendered at
	b          bytes.Buffer
}

// resolve follows $ref (to $defs only), keeping the referring schema's
// description when it has one.
func (r *renderer) resolve(s map[string]any) map[string]any {
	for range 8 {
		ref, _ := s["$ref"].(string)
		name, ok := strings.CutPrefix(ref, "#/$defs/")
		if !ok {
			return s
		}
		target, _ := r.defs[name].(map[string]any)
		if target == nil {
			return s
		}
		if d, ok := s["description"]; ok {
			target = with(target, "description", d)
		}
		s = target
	}
	return s
}

// with returns a copy of m with key set to v.
func with(m map[string]any, key string, v any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, x := range m {
		out[k] = x
	}
	out[key] = v
	return out
}

// object renders the properties of the object schema s (and of each
// object alternative of an anyOf/oneOf) under the path prefix; defPath is
// the path in the default config.
func (r *renderer) object(s map[string]any, prefix string, defPath []string) {
	s = r.resolve(s)
	props, _ := s["properties"].(map[string]any)
	required := map[string]bool{}
	for _, n := range asList(s["required"]) {
		if name, ok := n.(string); ok {
			required[name] = true
		}
	}
	names := make([]string, 0, len(props))
	for n := range props {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		p, _ := props[n].(map[string]any)
		r.field(join(prefix, n), p, required[n], append(slices.Clone(defPath), n))
	}
}

// field renders one field and then what is inside it.
// A field whose schema is a $defs entry rendered before refers to that
// field's nested fields instead of repeating them.
func (r *renderer) field(path string, raw map[string]any, required bool, defPath []string) {
	s := r.resolve(raw)
	ref, _ := raw["$ref"].(string)
	fmt.Fprintf(&r.b, "\n### `%s`\n\n", path)
	req := "optional"
	if required {
		req = "**required**"
	}
	fmt.Fprintf(&r.b, "%s, %s", r.typeOf(s), req)
	if d, ok := r.lookupDefault(defPath); ok {
		fmt.Fprintf(&r.b, ", default `%s`", d)
	}
	r.b.WriteString("\n")
	if d, _ := s["description"].(string); d != "" {
		fmt.Fprintf(&r.b, "\n%s\n", escape(d))
	}
	if first, ok := r.seen[ref]; ok && ref != "" && hasNested(s) {
		fmt.Fprintf(&r.b, "\nIts fields are those of `%s` above.\n", first)
		return
	}
	if ref != "" {
		r.seen[ref] = path
	}
	r.inside(path, s, defPath)
}

// inside renders the fields nested in s: object properties, array items'
// properties (path[]), map values' properties (path.<name>) and the
// properties of each object alternative.
func (r *renderer) inside(path string, s map[string]any, defPath []string) {
	if _, ok := s["properties"]; ok {
		r.object(s, path, defPath)
	}
	if items, ok := s["items"].(map[string]any); ok {
		r.inside(path+"[]", r.resolve(items), nil)
	}
	if ap, ok := s["additionalProperties"].(map[string]any); ok {
		r.inside(path+".<name>", r.resolve(ap), nil)
	}
	alts := alternatives(s)
	if !slices.ContainsFunc(alts, func(a map[string]any) bool { return r.resolve(a)["properties"] != nil }) {
		return // no form has fields: the type line said it all
	}
	for i, a := range alts {
		a = r.resolve(a)
		if _, ok := a["properties"]; !ok {
			// A form without fields (a string beside object forms) is
			// named too, so that the numbering of the others adds up.
			fmt.Fprintf(&r.b, "\n**`%s`, form %d of %d**: %s", path, i+1, len(alts), r.typeOf(a))
			if d, _ := a["description"].(string); d != "" {
				fmt.Fprintf(&r.b, ", %s", escape(d))
			}
			r.b.WriteString("\n")
			continue
		}
		fmt.Fprintf(&r.b, "\n**`%s`, form %d of %d**, the fields up to the next form", path, i+1, len(alts))
		if d, _ := a["description"].(string); d != "" {
			fmt.Fprintf(&r.b, ": %s", escape(d))
		}
		r.b.WriteString("\n")
		r.object(a, path, nil)
	}
}

// hasNested: s has fields of its own to render.
func hasNested(s map[string]any) bool {
	return s["properties"] != nil || s["items"] != nil || s["additionalProperties"] != nil || len(alternatives(s)) > 0
}

func alternatives(s map[string]any) []map[string]any {
	var out []map[string]any
	for _, k := range []string{"anyOf", "oneOf"} {
		for _, a := range asList(s[k]) {
			if m, ok := a.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// typeOf describes the schema's type and constraints in a few words, e.g.
// "integer, at least 1", "array of string, unique items",
// `"file" or "directory"`.
func (r *renderer) typeOf(s map[string]any) string {
	s = r.resolve(s)
	if c, ok := s["const"]; ok {
		if m, ok := c.(map[string]any); ok && len(m) == 0 {
			return "`{}` (takes no settings)"
		}
		return "`" + compact(c) + "`"
	}
	if e := asList(s["enum"]); e != nil {
		vals := make([]string, len(e))
		for i, v := range e {
			vals[i] = "`" + compact(v) + "`"
		}
		return "one of " + strings.Join(vals, ", ")
	}
	if alts := alternatives(s); len(alts) > 0 {
		var consts []string
		for _, a := range alts {
			if c, ok := a["const"]; ok {
				consts = append(consts, "`"+compact(c)+"`")
			}
		}
		if len(consts) == len(alts) {
			return "one of " + strings.Join(consts, ", ")
		}
		var parts []string
		for _, a := range alts {
			if t := r.typeOf(a); !slices.Contains(parts, t) {
				parts = append(parts, t)
			}
		}
		return strings.Join(parts, " or ")
	}
	t := typeName(s)
	if all := asList(s["allOf"]); all != nil {
		// The generator exports `int & >=1` as allOf [number, integer
		// minimum 1]: the most specific member wins.
		for _, a := range all {
			if m, ok := a.(map[string]any); ok {
				if at := r.typeOf(m); len(at) > len(t) || at == "integer" {
					t = at
				}
			}
		}
		return t
	}
	t += constraints(s)
	switch typeName(s) {
	case "array":
		if items, ok := s["items"].(map[string]any); ok {
			t += " of " + r.typeOf(items)
		}
	case "object":
		if ap, ok := s["additionalProperties"].(map[string]any); ok && s["properties"] == nil {
			t += " mapping names to " + r.typeOf(ap)
		}
	}
	return t
}

func typeName(s map[string]any) string {
	switch t := s["type"].(type) {
	case string:
		return t
	case []any:
		var parts []string
		for _, x := range t {
			parts = append(parts, fmt.Sprint(x))
		}
		return strings.Join(parts, " or ")
	}
	if _, ok := s["properties"]; ok {
		return "object"
	}
	return "any"
}

// constraints lists the schema's validation keywords in words, in
// parentheses: " (at least 1 item, unique items)".
func constraints(s map[string]any) string {
	var out []string
	add := func(key, words, unit string) {
		if v, ok := s[key]; ok {
			out = append(out, strings.TrimSpace(words+" "+compact(v)+" "+unit))
		}
	}
	add("minimum", "at least", "")
	add("maximum", "at most", "")
	add("minLength", "at least", "characters")
	add("maxLength", "at most", "characters")
	add("minItems", "at least", "item(s)")
	add("maxItems", "at most", "item(s)")
	if u, _ := s["uniqueItems"].(bool); u {
		out = append(out, "unique items")
	}
	if f, ok := s["format"].(string); ok {
		out = append(out, "format "+f)
	}
	if p, ok := s["pattern"].(string); ok {
		out = append(out, "matching `"+p+"`")
	}
	if len(out) == 0 {
		return ""
	}
	return " (" + strings.Join(out, ", ") + ")"
}

// lookupDefault returns the compact JSON of the default config's value at
// path.
func (r *renderer) lookupDefault(path []string) (string, bool) {
	if r.defaults == nil || path == nil {
		return "", false
	}
	cur := r.defaults
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		if cur, ok = m[p]; !ok {
			return "", false
		}
	}
	if _, ok := cur.(map[string]any); ok {
		return "", false // an object's fields show their own defaults
	}
	return compact(cur), true
}

func compact(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(b.String())
}

// escape keeps a description's text as written in Markdown: "<name>" is
// not an HTML tag, "*" no emphasis. Code spans (`...`) are left alone:
// Markdown shows them literally.
func escape(s string) string {
	var b strings.Builder
	code := false
	for _, r := range s {
		switch {
		case r == '`':
			code = !code
		case !code && (r == '<' || r == '*'):
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}
