package chainoftrust_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/artifacts"
	"github.com/workergen/workergen/plugins/chainoftrust"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/task"
)

func newPlugin(t *testing.T, cfg map[string]any) (plugins.Plugin, error) {
	raw, _ := json.Marshal(cfg)
	return chainoftrust.New(plugins.Options{Config: raw})
}

func TestConfigErrorsNameTheField(t *testing.T) {
	_, err := newPlugin(t, map[string]any{"ed25519SigningKeyLocation": filepath.Join(t.TempDir(), "missing")})
	require.ErrorContains(t, err, "plugins.chainoftrust.ed25519SigningKeyLocation")
	bad := filepath.Join(t.TempDir(), "extra.json")
	require.NoError(t, os.WriteFile(bad, []byte("[1]"), 0o600))
	_, err = newPlugin(t, map[string]any{"additionalDataFile": bad})
	require.ErrorContains(t, err, "plugins.chainoftrust.additionalDataFile")
	_, err = newPlugin(t, map[string]any{"environment": map[string]any{"zone": "x"}})
	require.ErrorContains(t, err, "zone")
}

func TestNoKeyIsMalformedPayload(t *testing.T) {
	p, err := newPlugin(t, nil)
	require.NoError(t, err)
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{p}, Payload: map[string]any{"features": map[string]any{"chainOfTrust": true}}})
	require.Equal(t, task.ReasonMalformedPayload, res.Resolution.Reason)
	require.Contains(t, res.Log, "payload.features.chainOfTrust: this worker has no Chain of Trust signing key")
	// Not asked for: nothing happens.
	res = plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{p}})
	require.Equal(t, task.Completed, res.Resolution.State)
	require.Empty(t, res.Artifacts)
}

// A payload artifact that takes one of the feature's names is refused
// before the task runs.
func TestReservedNames(t *testing.T) {
	key, _ := newKey(t)
	p, err := newPlugin(t, map[string]any{"ed25519SigningKeyLocation": key})
	require.NoError(t, err)
	a, _ := artifacts.New(plugins.Options{})
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{a, p}, Payload: map[string]any{
		"mock":      map[string]any{"files": map[string]string{"x": "forged"}},
		"artifacts": []any{map[string]any{"type": "file", "path": "x", "name": "public/chain-of-trust.json"}},
		"features":  map[string]any{"chainOfTrust": true},
	}})
	require.Equal(t, task.ReasonMalformedPayload, res.Resolution.Reason)
	require.True(t, strings.Contains(res.Log, `"public/chain-of-trust.json"`), res.Log)
}
