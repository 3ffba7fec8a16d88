package gwconfig

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/taskcluster/tcschema"
)

func refDir(t *testing.T) string {
	t.Helper()
	shared, err := tcschema.SharedDir()
	if err != nil {
		t.Skipf("reference data not found: %v", err)
	}
	return filepath.Join(shared, "taskcluster", "references", "generic-worker")
}

var allPlugins = Options{Plugins: []string{"mounts", "tasklog", "taskclusterproxy", "env"}}

func TestValidExampleLoads(t *testing.T) {
	c, err := Load(filepath.Join(refDir(t), "config-examples", "valid.json"), allPlugins)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{
		"rootUrl":      "https://tc-tests.example.com",
		"credentials":  map[string]any{"clientId": "test-client", "accessToken": "V7w5mcc3Q3mQHp3ns0C7dA"},
		"workerPoolId": "test-provisioner/some-worker-type",
		"workerGroup":  "abcde",
		"workerId":     "myworkerid",
	}, c.Document)
	assert.Equal(t, Location{PublicIP: "2.1.2.1"}, c.Location)
	assert.Equal(t, []string{"ed25519SigningKeyLocation"}, c.Ignored)
	assert.Equal(t, []string{`generic-worker config key "ed25519SigningKeyLocation" is ignored: this worker has no chainoftrust plugin`}, c.Warnings())
}

// With the chainoftrust plugin, the signing key and the worker's location
// (publicIP) become the plugin's config, where certificates take them from;
// with interactive, enableInteractive and interactivePort its config.
func TestChainOfTrustAndInteractiveKeys(t *testing.T) {
	c, err := Load(filepath.Join(refDir(t), "config-examples", "valid.json"), Options{Plugins: []string{"chainoftrust"}})
	require.NoError(t, err)
	cot := c.Document["plugins"].(map[string]any)["chainoftrust"].(map[string]any)
	assert.NotEmpty(t, cot["ed25519SigningKeyLocation"])
	assert.Equal(t, map[string]any{"publicIpAddress": "2.1.2.1"}, cot["environment"])
	assert.Empty(t, c.Ignored)

	c, err = Parse([]byte(`{"rootURL": "https://tc.example.com", "clientId": "c", "accessToken": "t", "workerId": "w", "workerType": "wt",
		"enableInteractive": true, "interactivePort": 53000, "instanceType": "m5.large", "region": "us-east-1"}`),
		Options{Plugins: []string{"interactive", "chainoftrust"}})
	require.NoError(t, err)
	plugins := c.Document["plugins"].(map[string]any)
	assert.Equal(t, map[string]any{"enable": true, "port": 53000}, plugins["interactive"])
	assert.Equal(t, map[string]any{"instanceType": "m5.large", "region": "us-east-1"}, plugins["chainoftrust"].(map[string]any)["environment"])
}

func TestOtherValidExamplesLoad(t *testing.T) {
	c, err := Load(filepath.Join(refDir(t), "config-examples", "noip.json"), allPlugins)
	require.NoError(t, err)
	assert.Equal(t, Location{}, c.Location)
	c, err = Load(filepath.Join(refDir(t), "config-examples", "worker-type-metadata.json"), allPlugins)
	require.NoError(t, err)
	assert.Equal(t, "generic-worker 2.0.0", c.Location.WorkerTypeMetadata["generic-worker"].(map[string]any)["version"])
}

func TestInvalidExamplesNameTheirKey(t *testing.T) {
	for file, want := range map[string][]string{
		"bool-as-string.json": {`key "shutdownMachineOnIdle": want a boolean, got the string "true"`},
		"invalid-ip.json":     {`key "publicIP": want an IP address, got "257.1.2.1"`},
		"invalid-json.json":   {"line 5, column 3", `after key "workerId"`},
	} {
		t.Run(file, func(t *testing.T) {
			_, err := Load(filepath.Join(refDir(t), "config-examples", file), allPlugins)
			require.Error(t, err)
			for _, w := range want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Contains(t, err.Error(), file)
			if file == "invalid-json.json" {
				assert.ErrorIs(t, err, ErrLoad)
			} else {
				assert.ErrorIs(t, err, ErrInvalid)
			}
		})
	}
}

// TestKeysCoverUsage checks that Keys holds every key usage.mdx documents.
func TestKeysCoverUsage(t *testing.T) {
	usage, err := os.ReadFile(filepath.Join(refDir(t), "usage.mdx"))
	require.NoError(t, err)
	text := string(usage)
	start := strings.Index(text, "** REQUIRED ** properties")
	end := strings.Index(text, "If an optional config setting")
	require.True(t, start > 0 && end > start)
	var documented []string
	for _, m := range regexp.MustCompile(`(?m)^ {10}([a-zA-Z0-9]+) {2,}`).FindAllStringSubmatch(text[start:end], -1) {
		documented = append(documented, m[1])
	}
	require.Greater(t, len(documented), 50)
	var names []string
	for _, k := range Keys {
		names = append(names, k.Name)
		assert.True(t, k.Target != "" || k.Note != "", "%s has neither a target nor a note", k.Name)
	}
	for _, d := range documented {
		assert.Contains(t, names, d)
	}
	for _, n := range names {
		if !slices.Contains(documented, n) {
			assert.Contains(t, []string{"workerPoolId", "workerTypeMetadata"}, n, "a key usage.mdx does not document")
		}
	}
	for _, r := range Required {
		assert.Contains(t, names, r)
	}
}

func TestWorkerRunnerFileMapsEveryMeaningfulKey(t *testing.T) {
	// The keys worker-runner writes (tools/worker-runner/worker/genericworker)
	// plus pool config for every mapped key.
	c, err := Parse([]byte(`{
		"rootURL": "https://tc.example.com/",
		"clientId": "worker/static/pool/w1", "accessToken": "tok", "certificate": "{\"version\":1}",
		"provisionerId": "proj", "workerType": "linux", "workerGroup": "static", "workerId": "w1",
		"publicIP": "203.0.113.5", "privateIP": "10.0.0.5", "instanceType": "m5.large",
		"instanceID": "i-123", "region": "us-east-1", "availabilityZone": "us-east-1a",
		"workerLocation": "{\"cloud\":\"aws\",\"region\":\"us-east-1\"}",
		"workerTypeMetadata": {"public-ipv4": "203.0.113.5"},
		"tasksDir": "/tasks", "cachesDir": "/caches", "downloadsDir": "/downloads",
		"capacity": 4, "numberOfTasksToRun": 10, "idleTimeoutSecs": 300, "maxTaskRunTime": 7200,
		"createObjectArtifacts": true, "requiredDiskSpaceMegabytes": 2048,
		"livelogExposePort": 60099, "shutdownMachineOnIdle": true, "taskclusterProxyPort": 8080
	}`), allPlugins)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{
		"rootUrl":            "https://tc.example.com/",
		"credentials":        map[string]any{"clientId": "worker/static/pool/w1", "accessToken": "tok", "certificate": `{"version":1}`},
		"workerPoolId":       "proj/linux",
		"workerGroup":        "static",
		"workerId":           "w1",
		"tasksDir":           "/tasks",
		"capacity":           4,
		"numberOfTasksToRun": 10,
		"idleTimeout":        300,
		"maxTaskRunTime":     7200,
		"artifactUpload":     "object",
		"plugins": map[string]any{
			"mounts":  map[string]any{"cachesDir": "/caches", "downloadsDir": "/downloads", "minFreeBytes": 2048 << 20},
			"tasklog": map[string]any{"liveLog": map[string]any{"listenAddress": ":60099", "publicURL": "http://203.0.113.5:60099"}},
		},
	}, c.Document)
	assert.Equal(t, Location{
		PublicIP: "203.0.113.5", PrivateIP: "10.0.0.5", InstanceType: "m5.large", InstanceID: "i-123",
		Region: "us-east-1", AvailabilityZone: "us-east-1a", WorkerLocation: `{"cloud":"aws","region":"us-east-1"}`,
		WorkerTypeMetadata: map[string]any{"public-ipv4": "203.0.113.5"},
	}, c.Location)
	assert.Equal(t, []string{"shutdownMachineOnIdle", "taskclusterProxyPort"}, c.Ignored)
}

const minimal = `"rootURL": "https://tc.example.com", "clientId": "c", "accessToken": "t", "workerId": "w", `

func TestPluginKeysNeedThePlugin(t *testing.T) {
	c, err := Parse([]byte(`{`+minimal+`"workerType": "x", "cachesDir": "/c", "livelogExposePort": 1}`), Options{})
	require.NoError(t, err)
	assert.NotContains(t, c.Document, "plugins")
	assert.Equal(t, []string{"cachesDir", "livelogExposePort"}, c.Ignored)
	assert.Contains(t, c.Warnings()[0], "this worker has no mounts plugin")
}

func TestErrors(t *testing.T) {
	for body, want := range map[string]string{
		`"workerType": "x", "idleTimeoutSec": 5`:                                `key "idleTimeoutSec": not a generic-worker config key (did you mean "idleTimeoutSecs"?)`,
		`"workerType": "x", "zzzzzz": 5`:                                        `key "zzzzzz": not a generic-worker config key`,
		`"workerType": "x", "capacity": 0`:                                      `key "capacity": 0 is out of range [1, 255]`,
		`"workerType": "x", "capacity": 1.5`:                                    `key "capacity": want an integer, got 1.5`,
		`"workerType": "x", "numberOfTasksToRun": "3"`:                          `key "numberOfTasksToRun": want an integer, got the string "3"`,
		`"workerType": "Bad_Type"`:                                              `key "workerType": "Bad_Type" does not match`,
		`"workerPoolId": "a/b", "workerType": "c"`:                              `key "workerPoolId": "a/b" disagrees with provisionerId/workerType "test-provisioner/c"`,
		`"provisionerId": "p"`:                                                  `key "provisionerId": given without workerType`,
		`"workerType": "x", "workerTypeMetaData": {}, "workerTypeMetadata": {}`: `set twice`,
		`"workerType": "x", "d2gConfig": []`:                                    `key "d2gConfig": want an object, got an array`,
		`"workerType": "x", "rootUrl": "ftp://x"`:                               `set twice`,
	} {
		_, err := Parse([]byte(`{`+minimal+body+`}`), allPlugins)
		require.Error(t, err, body)
		assert.ErrorIs(t, err, ErrInvalid)
		assert.Contains(t, err.Error(), want, body)
	}
	_, err := Parse([]byte(`{"rootURL": "not a url", "clientId": ""}`), allPlugins)
	require.Error(t, err)
	for _, want := range []string{`key "rootURL": want an http(s) URL, got "not a url"`, `key "clientId": required`, `key "accessToken": required`, `key "workerId": required`, `key "workerType": required (or workerPoolId)`} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = Parse([]byte(`[1]`), allPlugins)
	assert.ErrorIs(t, err, ErrLoad)
	_, err = Load(filepath.Join(t.TempDir(), "missing.json"), allPlugins)
	assert.ErrorIs(t, err, ErrLoad)
}

func TestKeysMatchCaseInsensitively(t *testing.T) {
	c, err := Parse([]byte(`{`+minimal+`"WORKERPOOLID": "a/b", "idletimeoutsecs": 3}`), allPlugins)
	require.NoError(t, err)
	assert.Equal(t, "a/b", c.Document["workerPoolId"])
	assert.Equal(t, 3, c.Document["idleTimeout"])
}

func TestNativeKeys(t *testing.T) {
	native := Options{Plugins: []string{"mounts"}, Native: []string{"engine", "plugins", "reclaimMargin", "capacity"}}
	c, err := Parse([]byte(`{`+minimal+`"workerType": "x", "engine": {"socket": "unix:///run/podman.sock"},
		"plugins": {"mounts": {"maxDownloadSize": 5}}, "reclaimMargin": 60, "cachesDir": "/c", "capacity": 2}`), native)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"socket": "unix:///run/podman.sock"}, c.Document["engine"])
	assert.Equal(t, map[string]any{"mounts": map[string]any{"maxDownloadSize": 5, "cachesDir": "/c"}}, c.Document["plugins"])
	assert.Equal(t, 60, c.Document["reclaimMargin"])
	assert.Equal(t, 2, c.Document["capacity"], "capacity is generic-worker's key too")

	_, err = Parse([]byte(`{`+minimal+`"workerType": "x", "plugins": {"mounts": {"cachesDir": "/a"}}, "cachesDir": "/c"}`), native)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `key "cachesDir": conflicts with workergen key "plugins.mounts.cachesDir", also set`)
}

func TestMarkdownTable(t *testing.T) {
	table := MarkdownTable()
	assert.Equal(t, len(Keys)+2, strings.Count(table, "\n"))
	assert.Contains(t, table, "| `idleTimeoutSecs` | an integer | `idleTimeout` |\n")
	assert.Contains(t, table, "| `wstAudience` | a string | none: workergen has no websocktunnel client |\n")
}

// The resource monitor and runTaskAsCurrentUser keys set the native
// engine's config; another engine warns about them.
func TestResourceMonitorKeysSetTheNativeEngine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"rootURL": "https://tc.example.com", "clientId": "c", "accessToken": "a",
		"provisionerId": "p", "workerType": "w", "workerGroup": "g", "workerId": "i",
		"enableResourceMonitor": true, "minAvailableMemoryBytes": 1048576, "maxMemoryUsagePercent": 80,
		"allowedHighMemoryDurationSecs": 9, "disableOOMProtection": true, "enableRunTaskAsCurrentUser": false}`), 0o600))
	c, err := Load(path, Options{Engine: "native"})
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"enableResourceMonitor": true, "minAvailableMemoryBytes": 1048576, "maxMemoryUsagePercent": 80,
		"allowedHighMemoryDurationSecs": 9, "disableOOMProtection": true, "enableRunTaskAsCurrentUser": false}, c.Document["engine"])
	assert.Empty(t, c.Ignored)

	c, err = Load(path, Options{Engine: "container"})
	require.NoError(t, err)
	assert.NotContains(t, c.Document, "engine")
	assert.Contains(t, c.Ignored, "enableResourceMonitor")
}
