package worker

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/task"
)

// TestSchemaMarkdown: `schema payload --markdown` prints the same page the
// generator writes as dist/<profile>/payload.md (from the same embedded
// schema and profile facts), and `schema config --markdown` gives the
// profile's defaults.
func TestSchemaMarkdown(t *testing.T) {
	for _, name := range []string{"linux-native", "linux-docker"} {
		p, err := gen.Resolve("..", name)
		require.NoError(t, err)
		b := Build{Profile: p.Name, Binary: p.Binary, Dialect: task.Dialect(p.Dialect), Engine: EngineEntry{Name: p.Engine.Name},
			PayloadSchema: p.PayloadSchema, ConfigSchema: p.ConfigSchema, DefaultConfig: p.DefaultConfig, ProfileJSON: p.ProfileJSON}
		for i := len(p.Plugins) - 1; i >= 0; i-- { // order must not matter
			b.Plugins = append(b.Plugins, PluginEntry{Name: p.Plugins[i].Name})
		}
		for _, u := range p.Unsupported {
			b.Unsupported = append(b.Unsupported, Unsupported{Path: u.Path, Feature: u.Feature})
		}
		want, err := p.PayloadDoc()
		require.NoError(t, err)
		var out, errOut bytes.Buffer
		require.Equal(t, 0, MainArgs(b, []string{"schema", "payload", "--markdown"}, &out, &errOut), errOut.String())
		require.Equal(t, string(want), out.String())

		out.Reset()
		require.Equal(t, 0, MainArgs(b, []string{"schema", "config", "--markdown"}, &out, &errOut), errOut.String())
		require.Contains(t, out.String(), "### `capacity`\n\ninteger (at least 1), optional, default `1`\n")
		require.Contains(t, out.String(), "### `engine`\n")

		out.Reset()
		require.Equal(t, 0, MainArgs(b, []string{"schema", "payload"}, &out, &errOut))
		require.Equal(t, string(p.PayloadSchema), out.String())
	}
	var out, errOut bytes.Buffer
	require.Equal(t, ExitUsage, MainArgs(Build{Binary: "w"}, []string{"schema", "payload", "--md"}, &out, &errOut))
	require.True(t, strings.HasPrefix(errOut.String(), "usage: w schema payload|config [--markdown]"), errOut.String())
}
