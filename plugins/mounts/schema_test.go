package mounts_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/gen"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "no go.mod above the test")
		dir = parent
	}
}

func compileSchema(t *testing.T, doc []byte, draft *jsonschema.Draft) *jsonschema.Schema {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	if draft != nil {
		c.DefaultDraft(draft)
	}
	require.NoError(t, c.AddResource("mem://schema.json", v))
	s, err := c.Compile("mem://schema.json")
	require.NoError(t, err)
	return s
}

// upstream returns generic-worker's payload schema: file under
// ../shared/taskcluster/schemas/generic-worker, first oneOf branch if any.
func upstream(t *testing.T, file string) *jsonschema.Schema {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "..", "shared", "taskcluster", "schemas", "generic-worker", file))
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	schema := doc
	if one, ok := doc["oneOf"].([]any); ok {
		schema = one[0].(map[string]any)
	}
	delete(schema, "$schema")
	delete(schema, "$id")
	schema["definitions"] = doc["definitions"]
	b, err := json.Marshal(schema)
	require.NoError(t, err)
	return compileSchema(t, b, jsonschema.Draft6)
}

// TestSchemaJudgesMountsLikeUpstream: the composed payload schemas of the
// native profiles accept and reject mounts exactly as generic-worker's
// schemas do.
func TestSchemaJudgesMountsLikeUpstream(t *testing.T) {
	h := strings.Repeat("a", 64)
	mounts := []string{
		`[]`,
		`[{"cacheName": "c", "directory": "d"}]`,
		`[{"cacheName": "c", "directory": "d", "content": {"raw": "x"}, "format": "tar.gz"}]`,
		`[{"cacheName": "c", "directory": "d", "content": {"raw": "x"}}]`,
		`[{"cacheName": "c", "directory": "d", "format": "zip"}]`,
		`[{"cacheName": "c"}]`,
		`[{"file": "f", "content": {"raw": "x"}}]`,
		`[{"file": "f", "content": {"raw": "x"}, "format": "zst"}]`,
		`[{"file": "f", "content": {"raw": "x"}, "format": "tar.gz"}]`,
		`[{"file": "f", "content": {"base64": "aGk="}}]`,
		`[{"file": "f", "content": {"base64": "not base64!"}}]`,
		`[{"file": "f", "content": {"url": "https://example.com/x", "sha256": "` + h + `"}}]`,
		`[{"file": "f", "content": {"url": "https://example.com/x", "sha256": "ABC"}}]`,
		`[{"file": "f", "content": {"url": "https://example.com/x", "raw": "x"}}]`,
		`[{"file": "f", "content": {"taskId": "cv8MDnOmTduXKOFQtGbZtw", "artifact": "public/a", "sha256": "` + h + `"}}]`,
		`[{"file": "f", "content": {"taskId": "not-a-task-id", "artifact": "public/a"}}]`,
		`[{"file": "f", "content": {"namespace": "a.b.c", "artifact": "public/a"}}]`,
		`[{"file": "f", "content": {"namespace": "a.b.c", "artifact": "public/a", "sha256": "` + h + `"}}]`,
		`[{"file": "f", "content": {}}]`,
		`[{"file": "f"}]`,
		`[{"directory": "d", "content": {"raw": "x"}, "format": "7z"}]`,
		`[{"directory": "d", "content": {"raw": "x"}, "format": "rar"}]`,
		`[{"directory": "d", "content": {"raw": "x"}, "format": "gz"}]`,
		`[{"directory": "d", "content": {"raw": "x"}}]`,
		`[{"directory": "d", "content": {"raw": "x"}, "format": "tar.xz", "other": 1}]`,
		`[{"file": "f", "directory": "d", "content": {"raw": "x"}, "format": "tar"}]`,
		`{"file": "f", "content": {"raw": "x"}}`,
	}
	for _, c := range []struct{ profile, file string }{
		{"linux-native", "insecure_posix.json"},
		{"windows-native", "multiuser_windows.json"},
	} {
		p, err := gen.Resolve(repoRoot(t), c.profile)
		require.NoError(t, err)
		ours := compileSchema(t, p.PayloadSchema, nil)
		up := upstream(t, c.file)
		var accepted int
		for _, m := range mounts {
			doc := `{"command": ` + map[bool]string{true: `[["true"]]`, false: `["true"]`}[c.profile != "windows-native"] + `, "maxRunTime": 1, "mounts": ` + m + `}`
			v, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
			require.NoError(t, err)
			upErr, ourErr := up.Validate(v), ours.Validate(v)
			require.Equal(t, upErr == nil, ourErr == nil, "%s: %s\nupstream: %v\nours: %v", c.profile, m, upErr, ourErr)
			if ourErr == nil {
				accepted++
			}
		}
		require.Greater(t, accepted, 10)
		require.Less(t, accepted, len(mounts)-8)
	}
}
