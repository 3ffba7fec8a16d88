package worker

import (
	"bytes"
	"encoding/json"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// componentsFrom finds each component's module in the build info: the
// longest module path containing the import path, with its replacement,
// and tells workergen's own from third-party ones.
func TestComponentsFromBuildInfo(t *testing.T) {
	const self = "github.com/workergen/workergen"
	b := Build{
		Engine: EngineEntry{Name: "native", Import: self + "/engines/native"},
		Plugins: []PluginEntry{
			{Name: "env", Import: self + "/plugins/env"},
			{Name: "stamp", Import: "example.com/tcstamp/stamp"},
			{Name: "deep", Import: "example.com/tcstamp/sub/deep"},
		},
	}
	bi := &debug.BuildInfo{
		Main: debug.Module{Path: self + "/dist/x", Version: "(devel)"},
		Deps: []*debug.Module{
			{Path: self, Version: "v0.0.0-20260101000000-0123456789ab", Replace: &debug.Module{Path: "../..", Version: "(devel)"}},
			{Path: "example.com/tcstamp", Version: "v1.2.0", Replace: &debug.Module{Path: "../../examples/thirdparty"}},
			{Path: "example.com/tcstamp/sub", Version: "v0.3.0"},
		},
	}
	got := componentsFrom(b, bi, self)
	require.Equal(t, []ComponentInfo{
		{Kind: "engine", Name: "native", Import: self + "/engines/native", Module: self, Version: "v0.0.0-20260101000000-0123456789ab", Replace: "../.."},
		{Kind: "plugin", Name: "env", Import: self + "/plugins/env", Module: self, Version: "v0.0.0-20260101000000-0123456789ab", Replace: "../.."},
		{Kind: "plugin", Name: "stamp", Import: "example.com/tcstamp/stamp", Module: "example.com/tcstamp", Version: "v1.2.0", Replace: "../../examples/thirdparty", ThirdParty: true},
		{Kind: "plugin", Name: "deep", Import: "example.com/tcstamp/sub/deep", Module: "example.com/tcstamp/sub", Version: "v0.3.0", ThirdParty: true},
	}, got)
	require.Equal(t, "example.com/tcstamp v1.2.0 => ../../examples/thirdparty", got[2].ModuleVersion())
	require.Equal(t, "third-party", got[2].Origin())
	require.Equal(t, "workergen", got[0].Origin())
}

// The components command prints a table, or JSON with --json; --version
// lists the components too. In a test binary the build info's main module
// is workergen itself.
func TestComponentsCommand(t *testing.T) {
	b := Build{Binary: "w", Profile: "p",
		Engine:  EngineEntry{Name: "hello", Import: "github.com/workergen/workergen/engines/hello"},
		Plugins: []PluginEntry{{Name: "stamp", Import: "example.com/tcstamp/stamp"}}}
	var out, errOut bytes.Buffer
	require.Equal(t, 0, MainArgs(b, []string{"components"}, &out, &errOut), errOut.String())
	require.Regexp(t, `(?m)^KIND\s+NAME\s+IMPORT\s+MODULE\s+ORIGIN$`, out.String())
	require.Regexp(t, `(?m)^engine\s+hello\s+github.com/workergen/workergen/engines/hello\s+github.com/workergen/workergen.*\s+workergen$`, out.String())
	require.Regexp(t, `(?m)^plugin\s+stamp\s+example.com/tcstamp/stamp\s+third-party$`, out.String())

	out.Reset()
	require.Equal(t, 0, MainArgs(b, []string{"components", "--json"}, &out, &errOut))
	var cs []ComponentInfo
	require.NoError(t, json.Unmarshal(out.Bytes(), &cs))
	require.Len(t, cs, 2)
	require.False(t, cs[0].ThirdParty)
	require.True(t, cs[1].ThirdParty)

	out.Reset()
	require.Equal(t, 0, MainArgs(b, []string{"--version"}, &out, &errOut))
	require.Contains(t, out.String(), "components:\n")
	require.Regexp(t, `(?m)^  plugin stamp\s+example.com/tcstamp/stamp\s+third-party$`, out.String())

	require.Equal(t, ExitUsage, MainArgs(b, []string{"components", "extra"}, &out, &errOut))
}
