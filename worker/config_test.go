package worker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/worker/config"
)

const testConfigSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "rootUrl": {"type": "string"},
    "credentials": {"type": "object", "additionalProperties": false,
      "properties": {"clientId": {"type": "string"}, "accessToken": {"type": "string"}, "certificate": {"type": "string"}}},
    "workerPoolId": {"type": "string"}, "workerGroup": {"type": "string"}, "workerId": {"type": "string"},
    "capacity": {"type": "integer", "minimum": 1},
    "tasksDir": {"type": "string"},
    "maxTaskRunTime": {"type": "integer"},
    "engine": {"type": "object"},
    "plugins": {"type": "object"}
  }
}`

func testBuild() Build {
	return Build{Profile: "test", Binary: "workergen-test", ConfigSchema: []byte(testConfigSchema),
		DefaultConfig: []byte(`{"capacity": 1, "workerPoolId": "workergen/local", "workerGroup": "local", "workerId": "local-1", "tasksDir": "tasks", "maxTaskRunTime": 86400, "engine": {"a": 1, "b": 2}}`)}
}

func TestLoadConfigMergesAndOverrides(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "worker.yml")
	require.NoError(t, os.WriteFile(path, []byte("capacity: 8\nengine:\n  b: 3\ncredentials:\n  clientId: from-file\n"), 0o644))
	env := map[string]string{"TASKCLUSTER_ACCESS_TOKEN": "tok", "TASKCLUSTER_ROOT_URL": "https://tc.example.com"}
	cfg, err := LoadConfig(testBuild(), path, func(k string) string { return env[k] })
	require.NoError(t, err)
	assert.Equal(t, 8, cfg.Capacity)
	assert.JSONEq(t, `{"a": 1, "b": 3}`, string(cfg.Engine), "objects merge key by key")
	assert.Equal(t, "from-file", cfg.Credentials.ClientID)
	assert.Equal(t, "tok", cfg.Credentials.AccessToken)
	assert.Equal(t, "https://tc.example.com", cfg.RootURL)
	assert.True(t, filepath.IsAbs(cfg.TasksDir))
}

func TestLoadConfigErrorsNameFieldAndFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "worker.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"capacty": 2, "capacity": "two"}`), 0o644))
	_, err := LoadConfig(testBuild(), path, func(string) string { return "" })
	require.ErrorIs(t, err, ErrConfig)
	msg := err.Error()
	assert.Contains(t, msg, path)
	assert.Contains(t, msg, `config: additional properties 'capacty' not allowed; did you mean "capacity"?`)
	assert.Contains(t, msg, "config.capacity")

	require.NoError(t, os.WriteFile(path, []byte(`{"credentials": {"clientID": "a", "acessToken": "b", "zzzzzzzz": "c"}}`), 0o644))
	_, err = LoadConfig(testBuild(), path, func(string) string { return "" })
	require.ErrorIs(t, err, ErrConfig)
	assert.Contains(t, err.Error(), `config.credentials: additional properties 'acessToken', 'clientID', 'zzzzzzzz' not allowed; did you mean "accessToken" for "acessToken", "clientId" for "clientID"?`)

	yml := filepath.Join(dir, "worker.yml")
	require.NoError(t, os.WriteFile(yml, []byte("capacity: 2\n---\ncapacity: 3\n"), 0o644))
	_, err = LoadConfig(testBuild(), yml, func(string) string { return "" })
	require.ErrorIs(t, err, ErrConfig)
	assert.Contains(t, err.Error(), yml+" holds more than one YAML document")
	// Document markers around a single document are fine.
	require.NoError(t, os.WriteFile(yml, []byte("---\ncapacity: 2\n---\n"), 0o644))
	_, err = LoadConfig(testBuild(), yml, func(string) string { return "" })
	require.NoError(t, err)

	require.NoError(t, os.WriteFile(path, []byte(`[1, 2]`), 0o644))
	_, err = LoadConfig(testBuild(), path, func(string) string { return "" })
	require.ErrorIs(t, err, ErrConfig)
	assert.Contains(t, err.Error(), "must be an object")
}

func TestParseTaskFile(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	def, err := ParseTaskFile([]byte(`{
  "x-worker": "generic-worker-posix",
  "taskQueueId": "proj/type",
  "created": "{{now}}", "deadline": "{{now+3h}}", "expires": "{{ now + 2d }}",
  "metadata": {"name": "n", "description": "d", "owner": "o@example.com", "source": "https://example.com"},
  "payload": {"command": [["true"]], "maxRunTime": 30}
}`), now)
	require.NoError(t, err)
	assert.Equal(t, "proj/type", def.TaskQueueID)
	assert.Equal(t, now, def.Created)
	assert.Equal(t, now.Add(3*time.Hour), def.Deadline)
	assert.Equal(t, now.Add(48*time.Hour), def.Expires)
	assert.JSONEq(t, `{"command": [["true"]], "maxRunTime": 30}`, string(def.Payload))

	def, err = ParseTaskFile([]byte("payload: {name: world}\n"), now)
	require.NoError(t, err)
	assert.JSONEq(t, `{"name": "world"}`, string(def.Payload), "a definition with only a payload")

	def, err = ParseTaskFile([]byte("name: world\n"), now)
	require.NoError(t, err)
	assert.JSONEq(t, `{"name": "world"}`, string(def.Payload), "a bare YAML payload")
	assert.Equal(t, now.Add(24*time.Hour), def.Deadline)

	_, err = ParseTaskFile([]byte("[1, 2"), now)
	require.Error(t, err)
	_, err = ParseTaskFile([]byte("- a\n"), now)
	require.ErrorContains(t, err, "object")
}

func TestSlugID(t *testing.T) {
	for range 100 {
		id := NewSlugID()
		assert.Len(t, id, 22)
		assert.False(t, strings.HasPrefix(id, "-"))
	}
}

func TestParseTaskFileErrors(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ name, file, want string }{
		{"empty", "", "the task file is empty"},
		{"comment only", "# nothing\n", "the task file is empty"},
		{"array", "[1]", "this one holds an array"},
		{"payload null", `{"payload": null, "deadline": "{{now+1h}}"}`, "payload: must be an object"},
		{"unknown key", `{"payload": {}, "bogusTop": 1}`, "bogusTop: not a task definition field"},
		{"wrong type", `{"payload": {}, "retries": "five"}`, "retries: got string, want an integer"},
		{"bad time", `{"payload": {}, "deadline": "tomorrow"}`, `deadline: "tomorrow" is not an ISO-8601 time`},
		{"bad placeholder", `{"payload": {}, "deadline": "{{now+1x}}"}`, `unsupported time placeholder "{{now+1x}}"`},
		{"expires before deadline", `{"payload": {}, "deadline": "{{now+1h}}", "expires": "{{now+1m}}"}`, "expires: "},
		{"deadline passed", `{"payload": {}, "created": "{{now-2h}}", "deadline": "{{now-1h}}"}`, "has passed"},
		{"duplicate key", "payload: {}\npayload: {}\n", "not valid JSON or YAML"},
		{"two documents", "payload: {a: 1}\n---\npayload: {b: 2}\n", "the task file holds more than one YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTaskFile([]byte(tc.file), now)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestRunRejectsBadTaskID(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "t.json")
	require.NoError(t, os.WriteFile(f, []byte(`{"name": "x"}`), 0o644))
	var stdout, stderr strings.Builder
	code := MainArgs(testBuild(), []string{"run", "--task-id", "../../escape", "--output", dir, f}, &stdout, &stderr)
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr.String(), "not a Taskcluster slugid")
}

func TestLoadConfigRefusesHugeDurationsAndMixedCredentials(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.yml")
	require.NoError(t, os.WriteFile(path, []byte("maxTaskRunTime: 10000000000\n"), 0o644))
	_, err := LoadConfig(testBuild(), path, func(string) string { return "" })
	require.ErrorIs(t, err, ErrConfig)
	assert.Contains(t, err.Error(), "config.maxTaskRunTime: 10000000000 is too large")

	require.NoError(t, os.WriteFile(path, []byte("credentials: {clientId: file, accessToken: t, certificate: '{}'}\n"), 0o644))
	env := map[string]string{"TASKCLUSTER_CLIENT_ID": "env", "TASKCLUSTER_ACCESS_TOKEN": "envtok"}
	cfg, err := LoadConfig(testBuild(), path, func(k string) string { return env[k] })
	require.NoError(t, err)
	assert.Equal(t, config.Credentials{ClientID: "env", AccessToken: "envtok"}, cfg.Credentials, "the file's certificate does not pair with the environment's client")
}

// Task files are read as YAML 1.2: only true and false are booleans, so
// the names and values an author writes stay what they wrote.
func TestParseTaskFileYAML12(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	def, err := ParseTaskFile([]byte("payload:\n  env: {N: '40', y: yes, on: off}\n  flags: {1: a, true: b}\n  when: 2026-01-02T03:04:05Z\n  ok: true\n"), now)
	require.NoError(t, err)
	assert.JSONEq(t, `{"env": {"N": "40", "y": "yes", "on": "off"}, "flags": {"1": "a", "true": "b"}, "when": "2026-01-02T03:04:05Z", "ok": true}`, string(def.Payload))
}
