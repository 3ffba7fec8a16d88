package taskrun_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/worker/taskrun"
)

// sharedDir is the upstream reference data next to the repository
// (../shared), as in CI.
func sharedDir(t *testing.T) string {
	dir, err := filepath.Abs("../../../shared")
	require.NoError(t, err)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("upstream reference data not found at %s", dir)
	}
	return dir
}

type samplePayload struct {
	source  string
	docker  bool // a docker-worker payload, else generic-worker's
	windows bool // generic-worker's Windows payload
	payload map[string]any
}

// realPayloads are the payloads of ../shared/corpus/real-tasks (by their
// x-worker) and of generic-worker's d2g test cases (docker-worker's
// payload and the generic-worker payload d2g made of it).
func realPayloads(t *testing.T) []samplePayload {
	shared := sharedDir(t)
	var out []samplePayload
	files, err := filepath.Glob(filepath.Join(shared, "corpus", "real-tasks", "*.json"))
	require.NoError(t, err)
	for _, f := range files {
		var def struct {
			Worker  string         `json:"x-worker"`
			Payload map[string]any `json:"payload"`
		}
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(raw, &def), f)
		out = append(out, samplePayload{filepath.Base(f), def.Worker == "docker-worker", def.Worker == "generic-worker-windows", def.Payload})
	}
	files, err = filepath.Glob(filepath.Join(shared, "taskcluster", "d2g-testcases", "*.yml"))
	require.NoError(t, err)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		type def struct {
			Payload map[string]any `json:"payload"`
		}
		var suite struct {
			TestSuite struct {
				PayloadTests []struct {
					Name string         `json:"name"`
					DW   map[string]any `json:"dockerWorkerTaskPayload"`
					GW   map[string]any `json:"genericWorkerTaskPayload"`
				} `json:"payloadTests"`
				TaskDefTests []struct {
					Name string `json:"name"`
					DW   def    `json:"dockerWorkerTaskDefinition"`
					GW   def    `json:"genericWorkerTaskDefinition"`
				} `json:"taskDefTests"`
			} `json:"testSuite"`
		}
		require.NoError(t, yaml.Unmarshal(raw, &suite), f)
		add := func(name string, dw, gw map[string]any) {
			if dw != nil {
				out = append(out, samplePayload{filepath.Base(f) + ": " + name + " (docker-worker)", true, false, dw})
			}
			if gw != nil {
				out = append(out, samplePayload{filepath.Base(f) + ": " + name + " (d2g)", false, false, gw})
			}
		}
		for _, c := range suite.TestSuite.PayloadTests {
			add(c.Name, c.DW, c.GW)
		}
		for _, c := range suite.TestSuite.TaskDefTests {
			add(c.Name, c.DW.Payload, c.GW.Payload)
		}
	}
	return out
}

// TestDialectHintRealPayloads: no real payload is taken for the other
// family's under its own dialect, and each is recognised under the other
// family's dialects.
func TestDialectHintRealPayloads(t *testing.T) {
	payloads := realPayloads(t)
	var docker, generic int
	for _, p := range payloads {
		own := task.DialectGenericWorkerPosix
		others := []task.Dialect{task.DialectDockerWorker}
		switch {
		case p.docker:
			own = task.DialectDockerWorker
			others = []task.Dialect{task.DialectGenericWorkerPosix, task.DialectGenericWorkerMultiuserPosix, task.DialectGenericWorkerWindows}
			docker++
		case p.windows:
			own = task.DialectGenericWorkerWindows
			generic++
		default:
			generic++
		}
		assert.Empty(t, taskrun.DialectHint(own, "own", p.payload), "%s under %s", p.source, own)
		for _, d := range others {
			hint := taskrun.DialectHint(d, "other", p.payload)
			if assert.NotEmpty(t, hint, "%s under %s", p.source, d) {
				want := "payload: this looks like a generic-worker payload ("
				if p.docker {
					want = "payload: this looks like a docker-worker payload (image"
				}
				assert.True(t, strings.HasPrefix(hint, want), hint)
			}
		}
	}
	t.Logf("%d docker-worker and %d generic-worker payloads", docker, generic)
	assert.Greater(t, docker, 40)
	assert.Greater(t, generic, 40)
	assert.Empty(t, taskrun.DialectHint(task.DialectHello, "hello", map[string]any{"image": "x", "command": []any{"a"}}))
}

// TestDialectHintProfilesExist: the profiles the hint recommends are
// shipped, with a dialect of the family it says.
func TestDialectHintProfilesExist(t *testing.T) {
	dialect := regexp.MustCompile(`(?m)^\s*dialect:\s*"([^"]+)"`)
	for docker, names := range taskrun.DialectProfiles {
		for _, name := range names {
			src, err := os.ReadFile(filepath.Join("..", "..", "profiles", name+".cue"))
			require.NoError(t, err, name)
			m := dialect.FindSubmatch(src)
			require.NotNil(t, m, name)
			assert.Equal(t, docker, task.Dialect(m[1]).IsDockerWorker(), name)
		}
	}
}
