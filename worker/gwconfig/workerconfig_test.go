package gwconfig_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/taskcluster/tcschema"
	"github.com/workergen/workergen/worker"
	"github.com/workergen/workergen/worker/gwconfig"
)

// TestDocumentIsAWorkingWorkergenConfig: valid.json, and a file with every
// mapped key, become configs the linux-native profile's schema accepts.
func TestDocumentIsAWorkingWorkergenConfig(t *testing.T) {
	shared, err := tcschema.SharedDir()
	if err != nil {
		t.Skipf("reference data not found: %v", err)
	}
	golden := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("../../gen/testdata/golden/linux-native", name+".golden"))
		require.NoError(t, err)
		return b
	}
	b := worker.Build{Profile: "linux-native", Binary: "workergen-linux-native",
		ConfigSchema: golden("config.schema.json"), DefaultConfig: golden("config.defaults.json")}
	opts := gwconfig.Options{Plugins: []string{"artifacts", "env", "exitstatus", "maxruntime", "mounts", "taskclusterproxy", "tasklog"}}

	load := func(c *gwconfig.Config) *worker.Config {
		doc, err := json.Marshal(c.Document)
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "config.json")
		require.NoError(t, os.WriteFile(path, doc, 0o600))
		cfg, err := worker.LoadConfig(b, path, func(string) string { return "" })
		require.NoError(t, err)
		return cfg
	}

	c, err := gwconfig.Load(filepath.Join(shared, "taskcluster/references/generic-worker/config-examples/valid.json"), opts)
	require.NoError(t, err)
	cfg := load(c)
	assert.Equal(t, "test-provisioner/some-worker-type", cfg.WorkerPoolID)
	assert.Equal(t, "test-client", cfg.Credentials.ClientID)
	assert.Equal(t, "https://tc-tests.example.com", cfg.RootURL)

	c, err = gwconfig.Parse([]byte(`{"rootURL": "https://tc.example.com", "clientId": "c", "accessToken": "t",
		"certificate": "{}", "provisionerId": "p", "workerType": "t", "workerGroup": "g", "workerId": "w",
		"tasksDir": "/tasks", "cachesDir": "/caches", "downloadsDir": "/downloads", "capacity": 2,
		"numberOfTasksToRun": 1, "idleTimeoutSecs": 30, "maxTaskRunTime": 60, "createObjectArtifacts": true,
		"requiredDiskSpaceMegabytes": 1, "livelogExposePort": 60099, "publicIP": "192.0.2.1"}`), opts)
	require.NoError(t, err)
	cfg = load(c)
	assert.Equal(t, 30, cfg.IdleTimeout)
	assert.Equal(t, "object", cfg.ArtifactUpload)
	assert.JSONEq(t, `{"cachesDir":"/caches","downloadsDir":"/downloads","minFreeBytes":1048576}`, string(cfg.Plugins["mounts"]))
}
