package container_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"

	"github.com/workergen/workergen/gen"
)

func compileSchema(t *testing.T, doc []byte, draft *jsonschema.Draft) *jsonschema.Schema {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if draft != nil {
		c.DefaultDraft(draft)
	} else {
		c.AssertFormat() // as the worker compiles our schema (worker/schema.Compile)
	}
	if err := c.AddResource("mem://schema.json", v); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("mem://schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validatable(t *testing.T, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type namedPayload struct {
	name    string
	payload map[string]any
}

var nowPlaceholder = regexp.MustCompile(`\{\{now[^}]*\}\}`)

// dockerWorkerPayloads returns the docker-worker payloads of the real-task
// corpus and of the d2g test cases.
func dockerWorkerPayloads(t *testing.T, shared string) []namedPayload {
	var out []namedPayload
	files, _ := filepath.Glob(filepath.Join(shared, "corpus", "real-tasks", "*.json"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raw = nowPlaceholder.ReplaceAll(raw, []byte("2030-01-01T00:00:00.000Z"))
		var task map[string]any
		if err := json.Unmarshal(raw, &task); err != nil {
			t.Fatal(f, err)
		}
		if task["x-worker"] != "docker-worker" {
			continue
		}
		out = append(out, namedPayload{filepath.Base(f), task["payload"].(map[string]any)})
	}
	cases, _ := filepath.Glob(filepath.Join(shared, "taskcluster", "d2g-testcases", "*.yml"))
	for _, f := range cases {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var suite struct {
			TestSuite struct {
				PayloadTests []struct {
					Name                    string         `json:"name"`
					DockerWorkerTaskPayload map[string]any `json:"dockerWorkerTaskPayload"`
				} `json:"payloadTests"`
				TaskDefTests []struct {
					Name                       string `json:"name"`
					DockerWorkerTaskDefinition struct {
						Payload map[string]any `json:"payload"`
					} `json:"dockerWorkerTaskDefinition"`
				} `json:"taskDefTests"`
			} `json:"testSuite"`
		}
		if err := yaml.Unmarshal(raw, &suite); err != nil {
			t.Fatal(f, err)
		}
		for _, c := range suite.TestSuite.PayloadTests {
			if c.DockerWorkerTaskPayload != nil {
				out = append(out, namedPayload{filepath.Base(f) + ": " + c.Name, c.DockerWorkerTaskPayload})
			}
		}
		for _, c := range suite.TestSuite.TaskDefTests {
			if c.DockerWorkerTaskDefinition.Payload != nil {
				out = append(out, namedPayload{filepath.Base(f) + ": " + c.Name, c.DockerWorkerTaskDefinition.Payload})
			}
		}
	}
	return out
}

// usedPaths returns which of paths ("a" or "a.b") payload has.
func usedPaths(payload map[string]any, unsupported []gen.Unsupported) []string {
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

func withoutPaths(payload map[string]any, paths []string) map[string]any {
	b, _ := json.Marshal(payload)
	var cp map[string]any
	_ = json.Unmarshal(b, &cp)
	for _, p := range paths {
		if parent, child, ok := strings.Cut(p, "."); ok {
			if m, ok := cp[parent].(map[string]any); ok {
				delete(m, child)
				if len(m) == 0 {
					delete(cp, parent)
				}
			}
		} else {
			delete(cp, p)
		}
	}
	return cp
}

// TestPayloadSchemaMatchesUpstream: every docker-worker payload of the
// corpus and the d2g test cases is judged by the linux-docker and
// linux-podman payload schemas as upstream's docker-worker schema judges
// it. Payloads using a field the profile does not provide (its Unsupported
// list) must be rejected, and without those fields be judged like
// upstream.
func TestPayloadSchemaMatchesUpstream(t *testing.T) {
	root := repoRoot(t)
	shared := filepath.Join(filepath.Dir(root), "shared")
	raw, err := os.ReadFile(filepath.Join(shared, "taskcluster", "schemas", "docker-worker", "v1", "payload.json"))
	if err != nil {
		t.Skipf("upstream reference data not found: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "$schema")
	delete(doc, "$id")
	upDoc, _ := json.Marshal(doc)
	upstream := compileSchema(t, upDoc, jsonschema.Draft6)
	payloads := dockerWorkerPayloads(t, shared)
	if len(payloads) < 20 {
		t.Fatalf("only %d docker-worker payloads found", len(payloads))
	}
	// Hand-made edge cases: both schemas must agree on these too.
	for i, extra := range []string{
		`{"image": "a", "maxRunTime": 1}`,
		`{"image": "a"}`,
		`{"image": {"type": "docker-image", "name": "a"}, "maxRunTime": 1}`,
		`{"image": {"type": "docker-image"}, "maxRunTime": 1}`,
		`{"image": {"type": "task-image", "taskId": "x", "path": "p", "extra": 1}, "maxRunTime": 1}`,
		`{"image": {"type": "bogus", "name": "a"}, "maxRunTime": 1}`,
		`{"image": 3, "maxRunTime": 1}`,
		`{"image": "a", "maxRunTime": 0}`,
		`{"image": "a", "maxRunTime": 1.5}`,
		`{"image": "a", "maxRunTime": 1, "command": ["a", 1]}`,
		`{"image": "a", "maxRunTime": 1, "cache": {"c": 1}}`,
		`{"image": "a", "maxRunTime": 1, "capabilities": {"privileged": "yes"}}`,
		`{"image": "a", "maxRunTime": 1, "capabilities": {"devices": {"gpu": true}}}`,
		`{"image": "a", "maxRunTime": 1, "features": {"allowPtrace": true}}`,
		`{"image": "a", "maxRunTime": 1, "features": {"unknownFeature": true}}`,
		`{"image": "a", "maxRunTime": 1, "onExitStatus": {"retry": [-1], "purgeCaches": [0]}}`,
		`{"image": "a", "maxRunTime": 1, "supersederUrl": "x"}`,
		`{"image": "a", "maxRunTime": 1, "unknown": true}`,
		`{"image": "a", "maxRunTime": 1, "env": {"A": 1}}`,
		`{"image": "a", "maxRunTime": 1, "artifacts": {"public/a": {"type": "file", "path": "/a"}}}`,
		`{"image": "a", "maxRunTime": 1, "artifacts": {"public/a": {"type": "volume", "path": "/a", "expires": "2030-01-01T00:00:00.000Z"}}}`,
		`{"image": "a", "maxRunTime": 1, "artifacts": {"public/a": {"type": "link", "path": "/a"}}}`,
		`{"image": "a", "maxRunTime": 1, "artifacts": {"public/a": {"type": "file"}}}`,
		`{"image": "a", "maxRunTime": 1, "artifacts": {"public/a": {"type": "file", "path": "/a", "name": "x"}}}`,
		`{"image": "a", "maxRunTime": 1, "artifacts": {"public/a": {"type": "file", "path": "/a", "expires": "tomorrow"}}}`,
		`{"image": "a", "maxRunTime": 1, "artifacts": [{"type": "file", "path": "/a"}]}`,
		`{"image": "a", "maxRunTime": 1, "log": "public/x.log", "features": {"bulkLog": true, "localLiveLog": false, "artifacts": false}}`,
		`{"image": "a", "maxRunTime": 1, "log": 3}`,
		`{"image": "a", "maxRunTime": 1, "features": {"bulkLog": "yes"}}`,
		`{"image": "a", "maxRunTime": 1, "features": {"chainOfTrust": true}}`,
	} {
		var p map[string]any
		if err := json.Unmarshal([]byte(extra), &p); err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, namedPayload{"edge case " + string(rune('a'+i)) + ": " + extra, p})
	}
	for _, profile := range []string{"linux-docker", "linux-podman"} {
		t.Run(profile, func(t *testing.T) {
			p, err := gen.Resolve(root, profile)
			if err != nil {
				t.Fatal(err)
			}
			ours := compileSchema(t, p.PayloadSchema, nil)
			var same, unsupported, upInvalid, features int
			for _, np := range payloads {
				upErr := upstream.Validate(validatable(t, np.payload))
				ourErr := ours.Validate(validatable(t, np.payload))
				if upErr != nil {
					upInvalid++
				}
				if used := usedPaths(np.payload, p.Unsupported); len(used) > 0 {
					unsupported++
					if ourErr == nil {
						t.Errorf("%s uses %v, which %s lacks, yet our schema accepts it", np.name, used, profile)
					}
					stripped := withoutPaths(np.payload, used)
					upErr = upstream.Validate(validatable(t, stripped))
					ourErr = ours.Validate(validatable(t, stripped))
					if (upErr == nil) != (ourErr == nil) {
						t.Errorf("%s without %v: upstream error %v, our error %v", np.name, used, upErr, ourErr)
					}
					continue
				}
				same++
				if (upErr == nil) != (ourErr == nil) {
					t.Errorf("%s: upstream error %v, our error %v", np.name, upErr, ourErr)
				}
				if f, ok := np.payload["features"].(map[string]any); ok && upErr == nil && (f["chainOfTrust"] == true || f["interactive"] == true) {
					features++
				}
			}
			t.Logf("%s: %d docker-worker payloads: %d judged like upstream as they are, %d use fields the profile lacks (rejected; judged like upstream without them), %d invalid upstream, %d valid ones use chainOfTrust or interactive (accepted)",
				profile, len(payloads), same, unsupported, upInvalid, features)
			// Every docker-worker field is provided since the chainoftrust
			// and interactive plugins: the 10 payloads that use
			// chainOfTrust or interactive (the d2g cases and corpus tasks)
			// are judged like upstream, and so accepted when valid there.
			if lacking := p.Unsupported; len(lacking) != 0 {
				t.Errorf("%s lacks %v, want none", profile, lacking)
			}
			if unsupported != 0 {
				t.Errorf("%d payloads use fields %s lacks, want none", unsupported, profile)
			}
			if features != 10 {
				t.Errorf("%d valid payloads use chainOfTrust or interactive, want 10 (the d2g cases and corpus tasks)", features)
			}
		})
	}
}
