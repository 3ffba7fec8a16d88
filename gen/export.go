package gen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/encoding/jsonschema"
)

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
// (draft 2020-12), reflows the descriptions it made of doc comments
// (docs.go) and adds a title. Generate's output is used as is; the
// golden tests and the corpus test in this package check that it accepts
// and rejects what the CUE (and upstream) schemas do.
func (r *resolver) jsonSchema(v cue.Value, title string) ([]byte, error) {
	expr, err := jsonschema.Generate(v, &jsonschema.GenerateConfig{NamesFunc: namesFunc})
	if err != nil {
		return nil, err
	}
	reflowDescriptions(expr)
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
