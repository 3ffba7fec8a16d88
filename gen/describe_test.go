package gen_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/gen"
)

// TestEveryPropertyDescribed walks the payload and config JSON Schemas of
// every shipped profile (and the third-party example) and fails for each
// property without a non-empty description (its own or its $ref target's),
// naming the profile, the schema file, the JSON pointer and the CUE file
// and field to document.
func TestEveryPropertyDescribed(t *testing.T) {
	root := repoRoot(t)
	for _, name := range append(shippedProfiles(t), exampleProfile) {
		p, err := gen.Resolve(root, name)
		require.NoError(t, err)
		for file, doc := range map[string][]byte{gen.PayloadSchemaFile: p.PayloadSchema, gen.ConfigSchemaFile: p.ConfigSchema} {
			var schema map[string]any
			require.NoError(t, json.Unmarshal(doc, &schema), "%s/%s", p.Name, file)
			for _, miss := range undescribed(schema, file == gen.PayloadSchemaFile) {
				t.Errorf("profile %s, %s: property %s has no description: %s", p.Name, file, miss.pointer, miss.fix)
			}
		}
	}
}

type missing struct{ pointer, fix string }

// undescribed returns the properties of schema without a description,
// sorted by JSON pointer.
func undescribed(schema map[string]any, payload bool) []missing {
	defs, _ := schema["$defs"].(map[string]any)
	var out []missing
	var walk func(node any, ptr, def string)
	walk = func(node any, ptr, def string) {
		switch n := node.(type) {
		case []any:
			for i, c := range n {
				walk(c, fmt.Sprintf("%s/%d", ptr, i), def)
			}
		case map[string]any:
			for _, k := range slices.Sorted(mapKeys(n)) {
				c := n[k]
				switch k {
				case "properties", "patternProperties", "$defs":
					m, _ := c.(map[string]any)
					for _, name := range slices.Sorted(mapKeys(m)) {
						cptr, cdef := ptr+"/"+k+"/"+escapePointer(name), def
						if k == "$defs" {
							cdef = name
						} else if !hasDescription(m[name], defs) {
							out = append(out, missing{cptr, fixHint(def, m[name], name, payload)})
						}
						walk(m[name], cptr, cdef)
					}
				case "items", "additionalProperties", "allOf", "anyOf", "oneOf", "not", "prefixItems", "then", "else", "if":
					walk(c, ptr+"/"+k, def)
				}
			}
		}
	}
	walk(schema, "", "")
	return out
}

func mapKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// hasDescription: the property schema has a non-empty description, or
// refers ($ref) to a definition that has one.
func hasDescription(prop any, defs map[string]any) bool {
	m, ok := prop.(map[string]any)
	if !ok {
		return false
	}
	if d, _ := m["description"].(string); strings.TrimSpace(d) != "" {
		return true
	}
	if ref, _ := m["$ref"].(string); strings.HasPrefix(ref, "#/$defs/") {
		target, _ := defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		d, _ := target["description"].(string)
		return strings.TrimSpace(d) != ""
	}
	return false
}

// fixHint says where to write the doc comment. def is the $defs entry the
// property is in ("" at the top level), named after its CUE path by the
// generator ("engines.native.#Config" is exported as
// "engines.native.Config"); a top-level payload property refers to its
// fragment's type, "plugins.env.payload.<dialect>.env.type".
func fixHint(def string, prop any, name string, payload bool) string {
	if def == "" {
		ref, _ := prop.(map[string]any)["$ref"].(string)
		if target := strings.TrimPrefix(ref, "#/$defs/"); target != ref && strings.HasSuffix(target, ".type") {
			parts := strings.Split(target, ".")
			return fmt.Sprintf("write a doc comment (// ...) right above the payload fragment's entry %q in %s (%s)", name, cueFile(parts[0], parts[1]), strings.TrimSuffix(target, ".type"))
		}
		if ref != "" {
			return fmt.Sprintf("give the CUE definition behind %s a doc comment, or the field %q one where it is composed (gen/compose.go)", ref, name)
		}
		if payload {
			return fmt.Sprintf("describe the payload object in its dialect: `objects: %q: \"...\"` in schemas/dialects.cue or schemas/docker-worker.cue", name)
		}
		return fmt.Sprintf("write a doc comment (// ...) right above the field %q of workerConfig in schemas/config.cue", name)
	}
	parts := strings.SplitN(def, ".", 3)
	if len(parts) < 2 {
		return fmt.Sprintf("write a doc comment (// ...) right above the field %q in the CUE of $defs/%s", name, def)
	}
	return fmt.Sprintf("write a doc comment (// ...) right above the field %q inside %s in %s", name, def, cueFile(parts[0], parts[1]))
}

// cueFile names the CUE source of a component or dialect.
func cueFile(section, name string) string {
	switch section {
	case "engines", "plugins":
		return filepath.ToSlash(filepath.Join(section, name, "*.cue")) + " (a third-party component: its module's CUE)"
	case "dialects":
		return "schemas/dialects.cue or schemas/docker-worker.cue (dialects." + name + ")"
	case "generated":
		return "gen/compose.go (generated)"
	}
	return section + "." + name
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// TestUndescribedNamesFieldAndFile: the walker reports a property without
// a description by JSON pointer, with the CUE file and field to document,
// for each place a field can come from; a description on the property or
// on its $ref target counts.
func TestUndescribedNamesFieldAndFile(t *testing.T) {
	doc := `{
	  "$defs": {
	    "plugins.telemetry.Config": {"type": "object", "properties": {
	      "logFile": {"type": "string"},
	      "logFormat": {"type": "string", "description": "text or json"}}},
	    "plugins.env.payload.docker-worker.env.type": {"type": "object"},
	    "plugins.maxruntime.payload.docker-worker.maxRunTime.type": {"type": "integer", "description": "seconds"}
	  },
	  "properties": {
	    "stateDir": {"type": "string"},
	    "env": {"$ref": "#/$defs/plugins.env.payload.docker-worker.env.type"},
	    "maxRunTime": {"$ref": "#/$defs/plugins.maxruntime.payload.docker-worker.maxRunTime.type"},
	    "features": {"type": "object", "properties": {}}
	  }
	}`
	var schema map[string]any
	require.NoError(t, json.Unmarshal([]byte(doc), &schema))

	got := undescribed(schema, false)
	require.Len(t, got, 4)
	require.Equal(t, "/$defs/plugins.telemetry.Config/properties/logFile", got[0].pointer)
	require.Contains(t, got[0].fix, `the field "logFile" inside plugins.telemetry.Config in plugins/telemetry/*.cue`)
	require.Equal(t, "/properties/env", got[1].pointer)
	require.Contains(t, got[1].fix, `the payload fragment's entry "env" in plugins/env/*.cue`)
	require.Equal(t, "/properties/features", got[2].pointer)
	require.Contains(t, got[2].fix, `of workerConfig in schemas/config.cue`)
	require.Equal(t, "/properties/stateDir", got[3].pointer)
	require.Contains(t, got[3].fix, `right above the field "stateDir" of workerConfig in schemas/config.cue`)

	got = undescribed(schema, true)
	require.Contains(t, got[2].fix, "`objects: \"features\": \"...\"` in schemas/dialects.cue")
}
