package native

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// corpusDir is ../shared/corpus/real-tasks next to the repository root.
func corpusDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("repository root not found")
		}
		dir = parent
	}
	c := filepath.Join(dir, "..", "shared", "corpus", "real-tasks")
	if _, err := os.Stat(c); err != nil {
		t.Skipf("corpus not available: %v", err)
	}
	return c
}

// TestCorpusCommandsDecode: the `command` of every generic-worker task in
// the real-task corpus decodes for its platform, and Windows command lines
// turn into wrapper scripts.
func TestCorpusCommandsDecode(t *testing.T) {
	dir := corpusDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		var def struct {
			Worker  string          `json:"x-worker"`
			Payload json.RawMessage `json:"payload"`
		}
		require.NoError(t, json.Unmarshal(data, &def), f)
		var goos string
		switch def.Worker {
		case "generic-worker-posix":
			goos = "linux"
		case "generic-worker-windows":
			goos = "windows"
		default:
			continue
		}
		n++
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := parseCommands(goos, def.Payload)
			var probe map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(def.Payload, &probe))
			if _, ok := probe["command"]; !ok {
				// The corpus's deliberately malformed payload (a
				// release-notes `mounts` example without command).
				require.ErrorContains(t, err, "payload.command: required")
				return
			}
			require.NoError(t, err)
			require.Positive(t, c.len())
			for i := range c.len() {
				require.NotEmpty(t, c.describe(i))
				if goos == "windows" {
					f := batPaths(`C:\tmp\wg`, i, c.len())
					require.True(t, strings.HasSuffix(string(batScript(c.lines[i])), "\r\n"))
					require.Contains(t, string(batWrapper(f, "T", i)), "exit /b")
				}
			}
		})
	}
	require.Positive(t, n, "no generic-worker tasks in the corpus")
}
