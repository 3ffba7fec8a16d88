package gen_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/gen"
)

// scratchRoot returns a temporary repository root holding a copy of the
// shipped schemas, go.mod and the CUE of every component folder, plus the
// extra files given (path -> content) and one profile, profiles/bad.cue.
func scratchRoot(t *testing.T, profile string, extra map[string]string) string {
	t.Helper()
	root := repoRoot(t)
	dst := t.TempDir()
	for _, top := range []string{gen.SchemasDir, gen.EnginesDir, gen.PluginsDir} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".cue") {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755))
			return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
		})
		require.NoError(t, err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dst, "go.mod"), gomod, 0o644))
	extra["profiles/bad.cue"] = profile
	for name, content := range extra {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dst, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dst, name), []byte(content), 0o644))
	}
	return dst
}

const goodProfile = `package workergen

profile: {
	name:        "bad"
	description: "test"
	dialect:     "generic-worker-posix"
	engine: import: "github.com/workergen/workergen/engines/native"
	plugins: {
		env: import: "github.com/workergen/workergen/plugins/env"
		maxruntime: import: "github.com/workergen/workergen/plugins/maxruntime"
	}
	targets: [{os: "linux", arch: "amd64"}]
}
`

// mutate replaces old with new in goodProfile (old must occur).
func mutate(t *testing.T, old, new string) string {
	t.Helper()
	require.Contains(t, goodProfile, old)
	return strings.Replace(goodProfile, old, new, 1)
}

const linuxOnlyPlugin = `package workergen

plugins: linuxonly: {
	description: "test plugin"
	os: ["linux"]
	order: 1
	conflicts: ["maxruntime"]
	requires: {}
	#Config: {}
	#Defaults: {}
	payload: "generic-worker-posix": {}
}
`

const clashingPlugin = `package workergen

plugins: env2: {
	description: "test plugin"
	os: ["linux"]
	order: 1
	conflicts: []
	requires: {}
	#Config: {}
	#Defaults: {}
	payload: "generic-worker-posix": {
		env: type: [string]: string
		"features.liveLog": type: bool
	}
}
`

const unavailableEngine = `package workergen

engines: future: {
	description: "test engine"
	os: ["linux"]
	abilities: []
	available: false
	reason:    "it comes in a later issue"
	#Config: {}
	#Defaults: {}
	payload: "generic-worker-posix": {}
}
`

// loopbackPlugin provides a field the dialect lists as unimplemented.
const loopbackPlugin = `package workergen

plugins: loopback: {
	description: "test plugin"
	os: ["linux"]
	order: 1
	conflicts: []
	requires: {}
	#Config: {}
	#Defaults: {}
	payload: "generic-worker-posix": "features.loopbackAudio": type: bool
}
`

// hostlessEngine speaks docker-worker but cannot give containers a name
// for the worker host.
const hostlessEngine = `package workergen

engines: hostless: {
	description: "test engine"
	os: ["linux"]
	abilities: ["volumes"]
	#Config: {}
	#Defaults: {}
	payload: "docker-worker": image: type: string
}
`

func TestGenerateRejects(t *testing.T) {
	cases := []struct {
		name    string
		profile string
		extra   map[string]string
		// want are substrings of the error; the first is file:line.
		want []string
	}{
		{
			name:    "field typo",
			profile: mutate(t, "\tdialect:", "\tdialekt: \"x\"\n\tdialect:"),
			want:    []string{"profiles/bad.cue:6:", "profile.dialekt", "not allowed", `did you mean "dialect"?`, "allowed fields here: binary, description, dialect, engine, name, plugins, targets"},
		},
		{
			name:    "wrong type",
			profile: mutate(t, `arch: "amd64"`, `arch: 64`),
			want:    []string{"profiles/bad.cue:12:", "profile.targets.0.arch: 64 is not allowed; allowed values: \"amd64\", \"arm64\""},
		},
		{
			name:    "unknown target os",
			profile: mutate(t, `os: "linux"`, `os: "plan9"`),
			want:    []string{"profiles/bad.cue:12:", `profile.targets.0.os: "plan9" is not allowed; allowed values: "darwin", "freebsd", "linux", "windows"`},
		},
		{
			name:    "misspelt target os",
			profile: mutate(t, `os: "linux"`, `os: "linus"`),
			want:    []string{"profiles/bad.cue:12:", `profile.targets.0.os: "linus" is not allowed; did you mean "linux"?`},
		},
		{
			name:    "dialect not for the target os",
			profile: mutate(t, `[{os: "linux", arch: "amd64"}]`, `[{os: "linux", arch: "amd64"}, {os: "windows", arch: "amd64"}]`),
			want:    []string{"profiles/bad.cue:12:", "dialect generic-worker-posix is for linux, darwin, freebsd tasks, not windows"},
		},
		{
			name:    "unknown plugin",
			profile: mutate(t, "plugins/env\"", "plugins/envv\""),
			want:    []string{"profiles/bad.cue:9:", `profile.plugins.env: unknown plugin "github.com/workergen/workergen/plugins/envv"`, `did you mean "github.com/workergen/workergen/plugins/env"?`},
		},
		{
			name:    "unknown engine",
			profile: mutate(t, `engines/native"`, `engines/nativ"`),
			want:    []string{"profiles/bad.cue:7:", `unknown engine "github.com/workergen/workergen/engines/nativ"`, `did you mean "github.com/workergen/workergen/engines/native"?`},
		},
		{
			name:    "unknown dialect",
			profile: mutate(t, `"generic-worker-posix"`, `"generic-worker-posx"`),
			want:    []string{"profiles/bad.cue:6:", `unknown dialect "generic-worker-posx"`},
		},
		{
			name:    "name does not match file",
			profile: mutate(t, `name:        "bad"`, `name: "good"`),
			want:    []string{"profiles/bad.cue:4:", `profile.name is "good"`},
		},
		{
			name: "plugin does not support target os",
			profile: strings.Replace(mutate(t, "plugins: {", "plugins: {\n\t\tlinuxonly: import: \"github.com/workergen/workergen/plugins/linuxonly\""),
				`[{os: "linux", arch: "amd64"}]`, `[{os: "linux", arch: "amd64"}, {os: "darwin", arch: "arm64"}]`, 1),
			extra: map[string]string{"plugins/linuxonly/linuxonly.cue": linuxOnlyPlugin},
			want:  []string{"profiles/bad.cue:9:", "plugin linuxonly does not support target OS darwin", "remove the plugin or the darwin targets"},
		},
		{
			name:    "conflicting plugins",
			profile: mutate(t, "plugins: {", "plugins: {\n\t\tlinuxonly: import: \"github.com/workergen/workergen/plugins/linuxonly\""),
			extra:   map[string]string{"plugins/linuxonly/linuxonly.cue": linuxOnlyPlugin},
			want:    []string{"profiles/bad.cue:9:", "plugin linuxonly conflicts with plugin maxruntime"},
		},
		{
			name:    "payload field clash",
			profile: mutate(t, "plugins: {", "plugins: {\n\t\tenv2: import: \"github.com/workergen/workergen/plugins/env2\"\n\t\ttasklog: import: \"github.com/workergen/workergen/plugins/tasklog\""),
			extra:   map[string]string{"plugins/env2/env2.cue": clashingPlugin},
			want:    []string{"plugins/env2/env2.cue:", `payload field "env" of dialect generic-worker-posix is defined by both`, `payload field "features.liveLog"`, "plugin tasklog"},
		},
		{
			name: "plugin not for the dialect",
			profile: `package workergen

profile: {
	name:        "bad"
	description: "test"
	dialect:     "hello"
	engine: import: "github.com/workergen/workergen/engines/hello"
	plugins: taskclusterproxy: import: "github.com/workergen/workergen/plugins/taskclusterproxy"
	targets: [{os: "linux", arch: "amd64"}]
}
`,
			want: []string{"profiles/bad.cue:8:", "plugin taskclusterproxy does not run with dialect hello (it runs with docker-worker, generic-worker-multiuser-posix, generic-worker-posix, generic-worker-windows)"},
		},
		{
			name: "missing engine ability",
			profile: `package workergen

profile: {
	name:        "bad"
	description: "test"
	dialect:     "docker-worker"
	engine: import: "github.com/workergen/workergen/engines/hostless"
	plugins: {
		env: import: "github.com/workergen/workergen/plugins/env"
		taskclusterproxy: import: "github.com/workergen/workergen/plugins/taskclusterproxy"
	}
	targets: [{os: "linux", arch: "amd64"}]
}
`,
			extra: map[string]string{"engines/hostless/hostless.cue": hostlessEngine},
			want: []string{"profiles/bad.cue:10:",
				`plugin taskclusterproxy needs engine ability "host-address" (engines.HostAddresser) with dialect docker-worker, which engine hostless lacks`,
				`plugin taskclusterproxy needs engine ability "hostname" (engines.HostNameBuilder)`,
				`plugin taskclusterproxy needs engine ability "sandbox-address" (engines.AddressedSandbox)`},
		},
		{
			name:    "unimplemented field provided",
			profile: goodProfile,
			extra:   map[string]string{"plugins/loopback/loopback.cue": loopbackPlugin},
			want:    []string{"schemas/dialects.cue:", `dialects.generic-worker-posix.unimplemented lists "features.loopbackAudio", which plugin loopback provides: remove the entry`},
		},
		{
			name:    "engine not available",
			profile: mutate(t, `engines/native"`, `engines/future"`),
			extra:   map[string]string{"engines/future/future.cue": unavailableEngine},
			want:    []string{"profiles/bad.cue:7:", "engine future is not available yet: it comes in a later issue"},
		},
		{
			name:    "engine config typo",
			profile: mutate(t, `engine: import: "github.com/workergen/workergen/engines/native"`, "engine: {\n\t\timport: \"github.com/workergen/workergen/engines/native\"\n\t\tconfig: inheritEnvv: []\n\t}"),
			want:    []string{"profiles/bad.cue:9:", "inheritEnvv", "not allowed", `did you mean "inheritEnv"?`},
		},
		{
			name:    "plugin config typo",
			profile: mutate(t, `env: import: "github.com/workergen/workergen/plugins/env"`, `env: {import: "github.com/workergen/workergen/plugins/env", config: x: 1}`),
			want:    []string{"profiles/bad.cue:9:", "not allowed"},
		},
		{
			name:    "stray top-level field",
			profile: strings.Replace(goodProfile, "profile: {", "profil: {}\nprofile: {", 1),
			want:    []string{"profiles/bad.cue:3:", `unknown top-level field "profil"`},
		},
		{
			name:    "no targets",
			profile: mutate(t, `targets: [{os: "linux", arch: "amd64"}]`, `targets: []`),
			want:    []string{"profiles/bad.cue:12:", "profile.targets"},
		},
		{
			name:    "syntax error",
			profile: mutate(t, "plugins: {", "plugins: {{"),
			want:    []string{"profiles/bad.cue:"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			extra := c.extra
			if extra == nil {
				extra = map[string]string{}
			}
			root := scratchRoot(t, c.profile, extra)
			_, err := gen.Resolve(root, "bad")
			require.Error(t, err)
			require.ErrorIs(t, err, gen.ErrInvalidProfile)
			var pe *gen.ProfileError
			require.True(t, errors.As(err, &pe))
			require.NotEmpty(t, pe.Positions(), "error without positions: %v", err)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), root, "positions must be relative to the repository root")
		})
	}
}

// TestScratchGood checks the scratch setup itself generates.
func TestScratchGood(t *testing.T) {
	root := scratchRoot(t, goodProfile, map[string]string{})
	p, err := gen.Resolve(root, "bad")
	require.NoError(t, err)
	require.Equal(t, "native", p.Engine.Name)
	// No linked plugin provides a member of `features` or `logs`: the
	// objects stay (empty and closed), as upstream accepts `features: {}`.
	ps := compile(t, p.PayloadSchema, nil)
	require.NoError(t, validate(t, ps, `{"command": [["true"]], "maxRunTime": 1, "features": {}, "logs": {}}`))
	require.Error(t, validate(t, ps, `{"command": [["true"]], "maxRunTime": 1, "features": {"liveLog": true}}`))
	require.Error(t, validate(t, ps, `{"command": [["true"]], "maxRunTime": 1, "onExitStatus": {}}`))
	require.Contains(t, p.Unsupported, gen.Unsupported{Path: "features.liveLog", Feature: "plugin tasklog"})
	require.Contains(t, p.Unsupported, gen.Unsupported{Path: "onExitStatus", Feature: "plugin exitstatus"})
}

// tpPlugin is a third-party plugin's CUE; tpProfile a profile linking it
// from module example.com/tp through the replace folder ../tp.
const tpPlugin = `package workergen

plugins: tp: {
	description: "third-party test plugin"
	os: ["linux"]
	order: 1
	conflicts: []
	requires: {}
	#Config: {}
	#Defaults: {}
	payload: "generic-worker-posix": tp: type: string
}
`

const tpProfile = `package workergen

profile: {
	name:        "bad"
	description: "test"
	dialect:     "generic-worker-posix"
	engine: import: "github.com/workergen/workergen/engines/native"
	plugins: tp: {
		import:  "example.com/tp/plug"
		module:  "example.com/tp"
		version: "v1.0.0"
		replace: "../tp"
	}
	targets: [{os: "linux", arch: "amd64"}]
}
`

// TestThirdPartyRejects: errors about third-party components are as
// precise as about in-tree ones: file:line in the profile or in the
// component's own CUE, and what to change.
func TestThirdPartyRejects(t *testing.T) {
	module := map[string]string{"tp/go.mod": "module example.com/tp\n\ngo 1.26.0\n", "tp/plug/plug.cue": tpPlugin}
	with := func(over map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range module {
			out[k] = v
		}
		for k, v := range over {
			if v == "" {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
		return out
	}
	rep := func(s, old, new string) string {
		require.Contains(t, s, old)
		return strings.Replace(s, old, new, 1)
	}
	cases := []struct {
		name, profile string
		files         map[string]string
		want          []string
	}{
		{"typo in the component's CUE", tpProfile, with(map[string]string{"tp/plug/plug.cue": rep(tpPlugin, "description:", "descripton:")}),
			[]string{"tp/plug/plug.cue:4:", "plugins.tp.descripton: field not allowed", `did you mean "description"?`}},
		{"wrong type in the component's CUE", tpProfile, with(map[string]string{"tp/plug/plug.cue": rep(tpPlugin, "order: 1", `order: "first"`)}),
			[]string{"tp/plug/plug.cue:6:", "plugins.tp.order"}},
		{"no module", rep(tpProfile, "\t\tmodule:  \"example.com/tp\"\n", ""), module,
			[]string{"profiles/bad.cue:9:", "example.com/tp/plug is outside this module", "add module"}},
		{"module not a prefix", rep(tpProfile, `module:  "example.com/tp"`, `module:  "example.com/other"`), module,
			[]string{"profiles/bad.cue:9:", `import "example.com/tp/plug" is not inside module "example.com/other"`}},
		{"bad version", rep(tpProfile, `version: "v1.0.0"`, `version: "v1.0"`), module,
			[]string{"profiles/bad.cue:11:", "profile.plugins.tp.version"}},
		{"replace is another module", tpProfile, with(map[string]string{"tp/go.mod": "module example.com/nottp\n"}),
			[]string{"profiles/bad.cue:12:", `tp/go.mod declares module "example.com/nottp", not "example.com/tp"`}},
		{"replace has no go.mod", tpProfile, with(map[string]string{"tp/go.mod": ""}),
			[]string{"profiles/bad.cue:12:", "tp has no go.mod"}},
		{"no such package", rep(tpProfile, `"example.com/tp/plug"`, `"example.com/tp/plgu"`), module,
			[]string{"profiles/bad.cue:9:", "has no package example.com/tp/plgu", `no folder "plgu"`}},
		{"package without CUE", tpProfile, with(map[string]string{"tp/plug/plug.cue": "", "tp/plug/plug.go": "package plug\n"}),
			[]string{"profiles/bad.cue:9:", "package example.com/tp/plug has no CUE (no .cue file in tp/plug)"}},
		{"key differs from the declared name", rep(tpProfile, "plugins: tp: {", "plugins: tq: {"), module,
			[]string{"profiles/bad.cue:8:", `example.com/tp/plug declares plugin "tp" (tp/plug/plug.cue:3:10), not "tq"`}},
		{"name of an in-tree plugin", rep(tpProfile, "plugins: tp: {", "plugins: env: {"), with(map[string]string{"tp/plug/plug.cue": rep(tpPlugin, "plugins: tp:", "plugins: env:")}),
			[]string{"tp/plug/plug.cue:3:", "plugin env of example.com/tp/plug has the name of this module's plugin env (github.com/workergen/workergen/plugins/env)"}},
		{"an engine where a plugin goes", rep(tpProfile, `"example.com/tp/plug"`, `"github.com/workergen/workergen/engines/hello"`), module,
			[]string{"profiles/bad.cue:9:", "is in this module"}},
		{"CUE beyond the component", tpProfile, with(map[string]string{"tp/plug/plug.cue": tpPlugin + "dialects: x: {}\n"}),
			[]string{"tp/plug/plug.cue:13:", "a component's CUE defines only"}},
		{"module cannot be resolved", rep(tpProfile, "\t\treplace: \"../tp\"\n", ""), module,
			[]string{"profiles/bad.cue:10:", "cannot resolve module example.com/tp@v1.0.0", "set replace to a local copy"}},
	}
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "-mod=mod")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := scratchRoot(t, c.profile, c.files)
			_, err := gen.Resolve(root, "bad")
			require.Error(t, err)
			require.ErrorIs(t, err, gen.ErrInvalidProfile)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), root, "positions must be relative to the repository root")
		})
	}
	// The same files, corrected, generate; the plugin's field is in the
	// composed payload schema and its module in profile.json.
	p, err := gen.Resolve(scratchRoot(t, tpProfile, with(nil)), "bad")
	require.NoError(t, err)
	require.Contains(t, string(p.PayloadSchema), `"plugins.tp.payload.generic-worker-posix.tp.type"`)
	require.Contains(t, string(p.ProfileJSON), `"module": "example.com/tp"`)
	require.Contains(t, string(p.ProfileJSON), `"replace": "tp"`)
}
