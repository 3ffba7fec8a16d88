package gen_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/gen"
)

// sharedDir is the upstream reference data next to the repository
// (../shared), as in CI.
func sharedDir(t testing.TB) string {
	dir := filepath.Join(filepath.Dir(repoRoot(t)), "shared")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("upstream reference data not found at %s", dir)
	}
	return dir
}

// upstreamSchema compiles an upstream generic-worker schema. pick selects
// the payload schema inside the document (insecure_posix.json has a oneOf
// whose first branch is the generic-worker payload; its second branch is
// the docker-worker payload generic-worker also accepts via d2g, which the
// native profiles do not). The document is draft-06 (its $schema names
// Taskcluster's draft-06 metaschema, which the compiler cannot fetch).
func upstreamSchema(t testing.TB, file string, pick func(doc map[string]any) any) *jsonschema.Schema {
	raw, err := os.ReadFile(filepath.Join(sharedDir(t), "taskcluster", "schemas", "generic-worker", file))
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	delete(doc, "$schema")
	delete(doc, "$id")
	schema := pick(doc).(map[string]any)
	schema["definitions"] = doc["definitions"]
	b, err := json.Marshal(schema)
	require.NoError(t, err)
	return compile(t, b, jsonschema.Draft6)
}

var placeholder = regexp.MustCompile(`\{\{now[^}]*\}\}`)

type corpusTask struct {
	file    string
	payload map[string]any
}

func corpus(t testing.TB, worker string) []corpusTask {
	files, err := filepath.Glob(filepath.Join(sharedDir(t), "corpus", "real-tasks", "*.json"))
	require.NoError(t, err)
	var out []corpusTask
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		// Placeholders only occur inside strings; any valid date-time
		// keeps them strings (formats are annotations in both schemas).
		raw = placeholder.ReplaceAll(raw, []byte("2030-01-01T00:00:00.000Z"))
		var task map[string]any
		require.NoError(t, json.Unmarshal(raw, &task), f)
		if task["x-worker"] != worker {
			continue
		}
		for k := range task {
			if strings.HasPrefix(k, "x-") {
				delete(task, k)
			}
		}
		out = append(out, corpusTask{file: filepath.Base(f), payload: task["payload"].(map[string]any)})
	}
	return out
}

// usedUnsupported returns the Unsupported paths present in payload.
func usedUnsupported(payload map[string]any, unsupported []gen.Unsupported) []string {
	var used []string
	for _, u := range unsupported {
		if parent, child, ok := strings.Cut(u.Path, "."); ok {
			if m, ok := payload[parent].(map[string]any); ok {
				if _, ok := m[child]; ok {
					used = append(used, u.Path)
				}
			}
		} else if _, ok := payload[u.Path]; ok {
			used = append(used, u.Path)
		}
	}
	return used
}

// withoutPaths returns a deep copy of payload without the given paths.
func withoutPaths(payload map[string]any, paths []string) map[string]any {
	b, _ := json.Marshal(payload)
	var cp map[string]any
	_ = json.Unmarshal(b, &cp)
	for _, p := range paths {
		if parent, child, ok := strings.Cut(p, "."); ok {
			if m, ok := cp[parent].(map[string]any); ok {
				delete(m, child)
			}
		} else {
			delete(cp, p)
		}
	}
	return cp
}

func toValidatable(t testing.TB, v any) any {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	out, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
	require.NoError(t, err)
	return out
}

// TestCorpus checks the composed payload schemas against upstream on the
// real-task corpus: a payload that uses no field the profile lacks must be
// accepted by our schema exactly when upstream accepts it; a payload using
// an unsupported field (features.loopbackAudio, ...) must be rejected, and with
// those fields removed must again be judged like upstream judges it.
func TestCorpus(t *testing.T) {
	root := repoRoot(t)
	cases := []struct {
		worker, profile, upstreamFile string
		pick                          func(map[string]any) any
	}{
		{"generic-worker-posix", "linux-native", "insecure_posix.json", func(d map[string]any) any { return d["oneOf"].([]any)[0] }},
		{"generic-worker-posix", "darwin-native", "insecure_posix.json", func(d map[string]any) any { return d["oneOf"].([]any)[0] }},
		{"generic-worker-windows", "windows-native", "multiuser_windows.json", func(d map[string]any) any { return d }},
		{"generic-worker-posix", "linux-multiuser", "multiuser_posix.json", func(d map[string]any) any { return d["oneOf"].([]any)[0] }},
		{"generic-worker-posix", "darwin-multiuser", "multiuser_posix.json", func(d map[string]any) any { return d["oneOf"].([]any)[0] }},
		{"generic-worker-windows", "windows-multiuser", "multiuser_windows.json", func(d map[string]any) any { return d }},
	}
	for _, c := range cases {
		t.Run(c.profile, func(t *testing.T) {
			p, err := gen.Resolve(root, c.profile)
			require.NoError(t, err)
			ours := compile(t, p.PayloadSchema, nil)
			up := upstreamSchema(t, c.upstreamFile, c.pick)
			tasks := corpus(t, c.worker)
			require.NotEmpty(t, tasks)
			var same, unsupported, upstreamInvalid int
			for _, task := range tasks {
				upErr := up.Validate(toValidatable(t, task.payload))
				ourErr := ours.Validate(toValidatable(t, task.payload))
				if upErr != nil {
					upstreamInvalid++
				}
				used := usedUnsupported(task.payload, p.Unsupported)
				if len(used) > 0 {
					unsupported++
					require.Error(t, ourErr, "%s uses %v, which %s lacks, yet our schema accepts it", task.file, used, c.profile)
					stripped := withoutPaths(task.payload, used)
					upErr = up.Validate(toValidatable(t, stripped))
					ourErr = ours.Validate(toValidatable(t, stripped))
					require.Equal(t, upErr == nil, ourErr == nil, "%s without %v: upstream error %v, our error %v", task.file, used, upErr, ourErr)
					continue
				}
				same++
				require.Equal(t, upErr == nil, ourErr == nil, "%s: upstream error %v, our error %v", task.file, upErr, ourErr)
			}
			t.Logf("%s: %d %s tasks: %d judged like upstream as they are, %d use fields the profile lacks (rejected; judged like upstream without them), %d invalid upstream",
				c.profile, len(tasks), c.worker, same, unsupported, upstreamInvalid)
			require.NotEmpty(t, p.Unsupported, "every shipped dialect still lacks a feature, which the test above exercises")
		})
	}
}
