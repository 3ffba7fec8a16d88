package worker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadmeConfigExample: the worker config shown in the README is valid
// for the linux-native profile (its generated schema and defaults).
func TestReadmeConfigExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "```yaml\nrootUrl:")
	require.True(t, ok, "README has a ```yaml block starting with rootUrl:")
	block, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	path := filepath.Join(t.TempDir(), "worker.yml")
	require.NoError(t, os.WriteFile(path, []byte("rootUrl:"+block), 0o644))

	golden := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("../gen/testdata/golden/linux-native", name+".golden"))
		require.NoError(t, err)
		return b
	}
	b := Build{Profile: "linux-native", Binary: "workergen-linux-native",
		ConfigSchema: golden("config.schema.json"), DefaultConfig: golden("config.defaults.json")}
	cfg, err := LoadConfig(b, path, func(string) string { return "" })
	require.NoError(t, err)
	assert.Equal(t, "proj-example/linux", cfg.WorkerPoolID)
	assert.Equal(t, 4, cfg.Capacity)
}
