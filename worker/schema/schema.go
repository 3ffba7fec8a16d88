// Package schema compiles the JSON Schemas a worker binary embeds (the
// profile's payload.schema.json and config.schema.json, draft 2020-12, as
// the generator exports them from CUE) and validates documents against
// them, with problems phrased for the person who wrote the document:
// `payload.command[0]: got string, want array`, one line each, sorted.
// The task-run stages (worker/taskrun) check payloads with it and config
// loading (worker/config) checks the operator's config.
package schema

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/workergen/workergen/internal/suggest"
)

// Schema is a compiled JSON Schema (draft 2020-12, as exported by the
// generator from the CUE definitions), with format assertions on.
type Schema struct {
	name string
	sch  *jsonschema.Schema
	doc  any // the decoded document, to look up allowed property names
}

// Compile compiles doc, a JSON Schema document; name identifies it in
// errors (e.g. "payload.schema.json").
func Compile(name string, doc []byte) (*Schema, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", name, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	url := "mem:///" + name
	if err := c.AddResource(url, v); err != nil {
		return nil, fmt.Errorf("loading %s: %w", name, err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("compiling %s: %w", name, err)
	}
	return &Schema{name: name, sch: sch, doc: v}, nil
}

// Validate checks doc (JSON) against the schema. It returns nil, or a list of
// problems, each "<root><path>: <what is wrong>", e.g.
// `payload.command[0]: got string, want array`, sorted and de-duplicated.
// root names the document, e.g. "payload" or "config".
func (s *Schema) Validate(root string, doc []byte) []string {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return []string{fmt.Sprintf("%s: not valid JSON: %v", root, err)}
	}
	return s.ValidateValue(root, v)
}

// ValidateValue is Validate for an already decoded JSON value (as produced by
// encoding/json into `any`, with json.Number or float64 numbers).
func (s *Schema) ValidateValue(root string, v any) []string {
	err := s.sch.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []string{fmt.Sprintf("%s: %v", root, err)}
	}
	p := message.NewPrinter(language.English)
	seen := map[string]bool{}
	var out []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			line := root + JSONPath(e.InstanceLocation) + ": " + describe(e.ErrorKind, p) + s.hint(e)
			if !seen[line] {
				seen[line] = true
				out = append(out, line)
			}
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	sort.Strings(out)
	return mergeTypeErrors(out)
}

// mergeTypeErrors folds "X: got string, want integer" and "X: got string,
// want number" (one type problem seen through two schema branches) into one
// line.
func mergeTypeErrors(lines []string) []string {
	out := lines[:0:0]
	for _, l := range lines {
		if n := len(out); n > 0 {
			prev := out[n-1]
			pi, li := strings.Index(prev, ", want "), strings.Index(l, ", want ")
			if pi > 0 && li > 0 && prev[:pi] == l[:li] {
				out[n-1] = prev + " or " + l[li+len(", want "):]
				continue
			}
		}
		out = append(out, l)
	}
	return out
}

// describe is the library's message, except where it says too little: a
// section that takes no settings (exported from a closed empty CUE struct
// as `const: {}`).
func describe(k jsonschema.ErrorKind, p *message.Printer) string {
	if ap, ok := k.(*kind.AdditionalProperties); ok {
		// The library lists them in map order; sort for stable messages.
		k = &kind.AdditionalProperties{Properties: slices.Sorted(slices.Values(ap.Properties))}
	}
	if c, ok := k.(*kind.Const); ok {
		if want, ok := c.Want.(map[string]any); ok && len(want) == 0 {
			if got, ok := c.Got.(map[string]any); ok {
				keys := make([]string, 0, len(got))
				for k := range got {
					keys = append(keys, strconv.Quote(k))
				}
				sort.Strings(keys)
				return "takes no settings; remove " + strings.Join(keys, ", ")
			}
			return "must be an empty object {}"
		}
	}
	return k.LocalizedString(p)
}

// hint suggests the allowed property nearest to each one an
// additionalProperties error names ("maxRuntime" for "maxRunTime"), from
// the `properties` of the schema object the error comes from.
func (s *Schema) hint(e *jsonschema.ValidationError) string {
	ap, ok := e.ErrorKind.(*kind.AdditionalProperties)
	if !ok {
		return ""
	}
	_, frag, _ := strings.Cut(e.SchemaURL, "#")
	obj, ok := lookupPointer(s.doc, frag).(map[string]any)
	if !ok {
		return ""
	}
	props, _ := obj["properties"].(map[string]any)
	allowed := slices.Sorted(maps.Keys(props))
	if len(ap.Properties) == 1 {
		if best := suggest.Closest(ap.Properties[0], allowed); best != "" {
			return fmt.Sprintf("; did you mean %q?", best)
		}
		return ""
	}
	var hints []string
	for _, bad := range slices.Sorted(slices.Values(ap.Properties)) {
		if best := suggest.Closest(bad, allowed); best != "" {
			hints = append(hints, fmt.Sprintf("%q for %q", best, bad))
		}
	}
	if len(hints) == 0 {
		return ""
	}
	return "; did you mean " + strings.Join(hints, ", ") + "?"
}

// lookupPointer resolves a JSON pointer (RFC 6901, possibly URL-escaped as
// in a URI fragment) in doc; nil when it leads nowhere.
func lookupPointer(doc any, ptr string) any {
	if p, err := url.PathUnescape(ptr); err == nil {
		ptr = p
	}
	if ptr == "" {
		return doc
	}
	cur := doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			cur = c[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

// JSONPath renders JSON pointer tokens the way task authors read paths:
// `.field`, `[3]` for array indices, `["odd key"]` for keys that are not
// identifiers.
func JSONPath(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		if _, err := strconv.Atoi(t); err == nil {
			b.WriteString("[" + t + "]")
			continue
		}
		if isIdent(t) {
			b.WriteString("." + t)
			continue
		}
		b.WriteString("[" + strconv.Quote(t) + "]")
	}
	return b.String()
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'):
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
