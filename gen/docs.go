package gen

import (
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/literal"
)

// Descriptions. The doc comment of a CUE field (the comment lines right
// above it, no blank line between) is its description in the exported JSON
// Schemas: jsonschema.Generate carries it as "description", and
// reflowDescriptions turns the comment's wrapped lines into prose.
// Comments for people reading the CUE go after a blank line or inside the
// value, where they are not doc comments.

// docText returns the doc comments of the field v, joined by blank lines.
func docText(v cue.Value) string {
	var parts []string
	for _, cg := range v.Doc() {
		if t := strings.TrimSpace(cg.Text()); t != "" {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, "\n\n")
}

// objectDocs returns the descriptions of the dialect's payload objects
// (`objects: features: "..."`) by name.
func (r *resolver) objectDocs(dialect cue.Value) map[string]string {
	out := map[string]string{}
	iter, err := dialect.LookupPath(cue.ParsePath("objects")).Fields()
	if err != nil {
		return out
	}
	for iter.Next() {
		out[iter.Selector().Unquoted()], _ = iter.Value().String()
	}
	return out
}

// componentDoc returns the `description` an engine or plugin declares
// (section "engines" or "plugins").
func (r *resolver) componentDoc(section, name string) string {
	s, _ := r.root.LookupPath(cue.MakePath(cue.Str(section), cue.Str(name), cue.Str("description"))).String()
	return s
}

// reflowDescriptions rewrites every "description" string of the exported
// schema x with reflow.
func reflowDescriptions(x ast.Expr) {
	ast.Walk(x, func(n ast.Node) bool {
		f, ok := n.(*ast.Field)
		if !ok {
			return true
		}
		name, _, err := ast.LabelName(f.Label)
		lit, isLit := f.Value.(*ast.BasicLit)
		if err != nil || name != "description" || !isLit {
			return true
		}
		if s, err := literal.Unquote(lit.Value); err == nil {
			f.Value = ast.NewString(reflow(s))
		}
		return true
	}, nil)
}

// reflow joins the lines of each paragraph of a comment's text with
// spaces; paragraphs stay separated by a blank line, and lines starting
// with "- " (list items) or indented (examples) keep their line break.
func reflow(s string) string {
	var paras []string
	for _, para := range strings.Split(strings.TrimSpace(s), "\n\n") {
		var b strings.Builder
		for i, line := range strings.Split(para, "\n") {
			if i > 0 {
				if keepBreak(line) {
					b.WriteByte('\n')
				} else {
					b.WriteByte(' ')
				}
			}
			if keepBreak(line) {
				b.WriteString(strings.TrimRight(line, " \t"))
			} else {
				b.WriteString(strings.TrimSpace(line))
			}
		}
		paras = append(paras, b.String())
	}
	return strings.Join(paras, "\n\n")
}

func keepBreak(line string) bool {
	return strings.HasPrefix(line, "- ") || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")
}
