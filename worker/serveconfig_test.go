package worker

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/taskcluster/tcschema"
)

// linuxNativeBuild is a Build with the linux-native profile's generated
// config schema, defaults and plugin names (no constructors).
func linuxNativeBuild(t *testing.T) Build {
	t.Helper()
	golden := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("../gen/testdata/golden/linux-native", name+".golden"))
		require.NoError(t, err)
		return b
	}
	b := Build{Profile: "linux-native", Binary: "workergen-linux-native", Engine: EngineEntry{Name: "native"},
		ConfigSchema: golden("config.schema.json"), DefaultConfig: golden("config.defaults.json")}
	for _, p := range []string{"env", "taskclusterproxy", "mounts", "maxruntime", "exitstatus", "artifacts", "tasklog"} {
		b.Plugins = append(b.Plugins, PluginEntry{Name: p})
	}
	return b
}

func TestDetectConfigFormat(t *testing.T) {
	b := linuxNativeBuild(t)
	for _, c := range []struct {
		doc    string
		format ConfigFormat
		key    string
	}{
		{`{"rootUrl": "https://tc", "credentials": {}, "workerPoolId": "a/b", "tasksDir": "/t", "capacity": 2}`, FormatWorkergen, ""},
		{`{"workerId": "w", "tasksDir": "/t", "numberOfTasksToRun": 1}`, FormatWorkergen, ""}, // keys both formats spell alike
		{`{"rootURL": "https://tc", "clientId": "c", "accessToken": "t", "workerType": "b"}`, FormatGenericWorker, "accessToken"},
		{`{"rootUrl": "https://tc", "idleTimeoutSecs": 5}`, FormatGenericWorker, "idleTimeoutSecs"},
		{`{"ROOTURL": "https://tc"}`, FormatGenericWorker, "ROOTURL"}, // generic-worker matches keys in any case
		{`{"rootUrl": "https://tc", "typo": 1}`, FormatWorkergen, ""},
	} {
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(c.doc), &doc))
		f, key := DetectConfigFormat(doc, b.ConfigSchema)
		assert.Equal(t, c.format, f, c.doc)
		assert.Equal(t, c.key, key, c.doc)
	}
}

func TestLoadWorkerConfigExamples(t *testing.T) {
	shared, err := tcschema.SharedDir()
	if err != nil {
		t.Skipf("reference data not found: %v", err)
	}
	examples := filepath.Join(shared, "taskcluster/references/generic-worker/config-examples")
	b := linuxNativeBuild(t)
	env := func(name string) string {
		return map[string]string{"TASKCLUSTER_CLIENT_ID": "from-env", "TASKCLUSTER_ACCESS_TOKEN": "env-token"}[name]
	}

	wc, err := loadWorkerConfig(b, filepath.Join(examples, "valid.json"), env)
	require.NoError(t, err)
	assert.Equal(t, FormatGenericWorker, wc.Format)
	assert.Equal(t, "test-provisioner/some-worker-type", wc.WorkerPoolID)
	assert.Equal(t, "test-client", wc.Credentials.ClientID, "a generic-worker file is read alone, as generic-worker reads it")
	assert.Equal(t, "https://tc-tests.example.com", wc.RootURL)
	require.NoError(t, checkWorkConfig(wc.Config), "valid.json is a config a worker can claim with")
	assert.NotEmpty(t, wc.GW.Warnings())

	for file, want := range map[string]string{
		"bool-as-string.json": `key "shutdownMachineOnIdle": want a boolean, got the string "true"`,
		"invalid-ip.json":     `key "publicIP": want an IP address, got "257.1.2.1"`,
		"invalid-json.json":   `after key "workerId"`,
	} {
		_, err := loadWorkerConfig(b, filepath.Join(examples, file), env)
		require.Error(t, err, file)
		assert.Contains(t, err.Error(), want, file)
		assert.Contains(t, err.Error(), file)
		if file == "invalid-json.json" {
			assert.ErrorIs(t, err, ErrConfigLoad, "exit 64, as generic-worker cannot load it")
		} else {
			assert.ErrorIs(t, err, ErrConfig, "exit 73, as generic-worker's invalid config")
		}
	}

	path := filepath.Join(t.TempDir(), "worker.yml")
	require.NoError(t, os.WriteFile(path, []byte("rootUrl: https://tc.example.com\nworkerPoolId: a/b\nworkerGroup: g\nworkerId: w\n"), 0o600))
	wc, err = loadWorkerConfig(b, path, env)
	require.NoError(t, err)
	assert.Equal(t, FormatWorkergen, wc.Format)
	assert.Equal(t, "from-env", wc.Credentials.ClientID, "workergen's format takes TASKCLUSTER_* variables")

	require.NoError(t, os.WriteFile(path, []byte(`{"rootURL": "https://tc.example.com", "clientId": "c", "accessToken": "t", "workerType": "b", "workerId": "w", "reclaimMargin": -1}`), 0o600))
	_, err = loadWorkerConfig(b, path, env)
	require.ErrorIs(t, err, ErrConfig)
	assert.Contains(t, err.Error(), "config.reclaimMargin", "a generic-worker file is validated against the embedded schema too")

	_, err = loadWorkerConfig(b, filepath.Join(t.TempDir(), "missing.json"), env)
	assert.ErrorIs(t, err, ErrConfigLoad)
}

func TestHelpShowsBothRunForms(t *testing.T) {
	b := linuxNativeBuild(t)
	var out bytes.Buffer
	require.Equal(t, 0, MainArgs(b, []string{"--help"}, &out, &out))
	assert.Contains(t, out.String(), "run [flags] TASK_FILE")
	assert.Contains(t, out.String(), "run --config FILE [--with-worker-runner] [--worker-runner-protocol-pipe PIPE]")
	out.Reset()
	require.Equal(t, 0, MainArgs(b, []string{"run", "-h"}, &out, &out))
	assert.Contains(t, out.String(), "run [flags] TASK_FILE")
	assert.Contains(t, out.String(), "run --config FILE [--with-worker-runner] [--worker-runner-protocol-pipe PIPE]")
	assert.Contains(t, out.String(), "-with-worker-runner")
}

func TestRunFormsAndConfigExitCodes(t *testing.T) {
	b := linuxNativeBuild(t)
	dir := t.TempDir()
	gw := filepath.Join(dir, "gw.json")
	require.NoError(t, os.WriteFile(gw, []byte(`{"rootURL": "https://tc.example.com", "clientId": "c", "accessToken": "t", "workerType": "b", "workerId": "w", "idleTimeoutSec": 5}`), 0o600))
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "--config", gw, "--output", dir}, ExitUsage, "--output goes with a TASK_FILE"},
		{[]string{"run", "--with-worker-runner", "task.yml"}, ExitUsage, "--with-worker-runner goes with run --config FILE"},
		{[]string{"run", "--config", gw}, ExitInvalidConfig, `did you mean "idleTimeoutSecs"?`},
		{[]string{"work", "--config", gw}, ExitInvalidConfig, `did you mean "idleTimeoutSecs"?`},
		{[]string{"run", "--config", filepath.Join(dir, "missing.json")}, ExitUsage, "missing.json"},
	} {
		var out bytes.Buffer
		assert.Equal(t, c.code, MainArgs(b, c.args, &out, &out), strings.Join(c.args, " "))
		assert.Contains(t, out.String(), c.want, strings.Join(c.args, " "))
	}
}
