package schema

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMarkdown renders a small schema with each construct the generator
// exports: $ref with a description beside it, allOf integer bounds, a map,
// an array of objects, alternatives, a const {}, defaults and unsupported
// fields.
func TestMarkdown(t *testing.T) {
	doc := `{
	  "$defs": {
	    "t.max": {"allOf": [{"type": "number"}, {"type": "integer", "minimum": 1}]},
	    "t.content": {"anyOf": [
	      {"type": "object", "properties": {"url": {"type": "string", "description": "where from"}}, "required": ["url"]},
	      {"type": "object", "properties": {"raw": {"type": "string", "maxLength": 10, "description": "inline"}}, "required": ["raw"]}]}
	  },
	  "type": "object",
	  "properties": {
	    "maxRunTime": {"description": "how long, in seconds", "$ref": "#/$defs/t.max"},
	    "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "variables, e.g. <name>, not ` + "`<x>`" + `"},
	    "mounts": {"type": "array", "description": "mounts", "items": {"type": "object",
	      "properties": {"content": {"$ref": "#/$defs/t.content", "description": "the content"}, "more": {"$ref": "#/$defs/t.content", "description": "more"}}}},
	    "plugins": {"const": {}, "description": "no settings"},
	    "image": {"description": "the image", "anyOf": [{"type": "string"},
	      {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}]},
	    "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]}
	  },
	  "required": ["maxRunTime"]
	}`
	md, err := Markdown([]byte(doc), Page{Title: "T", Intro: "Intro.", Defaults: []byte(`{"maxRunTime": 60, "plugins": {}}`),
		Unsupported: []UnsupportedField{{"features.loopbackVideo", "plugin loopback"}}})
	require.NoError(t, err)
	s := string(md)
	for _, want := range []string{
		"# T\n\nIntro.\n\n## Fields\n",
		"### `maxRunTime`\n\ninteger (at least 1), **required**, default `60`\n\nhow long, in seconds\n",
		"### `env`\n\nobject mapping names to string, optional\n\nvariables, e.g. \\<name>, not `<x>`\n",
		"### `mounts[].content`\n\nobject, optional\n\nthe content\n",
		"**`mounts[].content`, form 2 of 2**, the fields up to the next form\n",
		"### `mounts[].content.raw`\n\nstring (at most 10 characters), **required**\n\ninline\n",
		"### `mounts[].more`\n\nobject, optional\n\nmore\n",
		"### `plugins`\n\n`{}` (takes no settings), optional\n",
		"## Not available with this profile\n",
		"- `features.loopbackVideo`: needs plugin loopback\n",
		// A form without fields is named, so that the others' numbers add up.
		"the image\n\n**`image`, form 1 of 2**: string\n\n**`image`, form 2 of 2**, the fields up to the next form\n\n### `image.name`\n",
	} {
		assert.Contains(t, s, want)
	}
	assert.NotContains(t, s, "`either`, form", "alternatives without fields have no form lines")
	assert.Contains(t, s, "Its fields are those of `mounts[].content` above.", "a $defs entry is expanded once")
}
