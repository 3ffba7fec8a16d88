package release_test

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/release"
	"github.com/workergen/workergen/worker"
)

// thirdPartyProfile composes examples/thirdparty's plugin, a module of its
// own, through a local replace.
const thirdPartyProfile = "examples/thirdparty/linux-stamp.cue"

// TestReleaseThirdParty is the acceptance test of third-party components:
// offline (GOPROXY=off, GOWORK=off), the profile using the
// examples/thirdparty plugin is generated (its own dist module) and
// released twice, byte-identical; the SBOM lists the plugin's module; the
// released binary runs a task whose log holds the plugin's line and
// environment variable, and lists the plugin with its module version in
// --version and `components`.
func TestReleaseThirdParty(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a worker twice")
	}
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOWORK", "off")
	st := getStamp(t)
	host := gen.Target{OS: "linux", Arch: "amd64"}
	// The dist module is generated outside the checkout; its replacements
	// (recorded in the binary) lead from there to the repository.
	dist := t.TempDir()
	up, err := filepath.Rel(filepath.Join(dist, "linux-stamp"), repoRoot(t))
	require.NoError(t, err)
	replace := filepath.ToSlash(filepath.Join(up, "examples", "thirdparty"))
	run := func(out string) *release.Result {
		res, err := release.Run(context.Background(), release.Options{
			Root: repoRoot(t), DistDir: dist, OutDir: out, Profiles: []string{thirdPartyProfile},
			Platforms: []gen.Target{host}, Version: st.version, Commit: st.commit, Epoch: st.epoch,
		})
		require.NoError(t, err)
		return res
	}
	first, second := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	res := run(first)
	run(second)
	a, b := readTree(t, first), readTree(t, second)
	require.Equal(t, slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b)))
	for name, content := range a {
		require.Equal(t, content, b[name], "%s differs between two releases of the same commit", name)
	}
	tg := res.Targets[0]
	require.NoError(t, tg.Err)

	// The SBOM lists the third-party module, marked, and every component.
	var doc struct {
		Metadata struct {
			Component struct {
				Properties []struct{ Name, Value string }
			}
		}
		Components []struct {
			Name, Version string
			Properties    []struct{ Name, Value string }
		}
	}
	require.NoError(t, json.Unmarshal(a[tg.SBOM], &doc))
	var stamp []string
	for _, c := range doc.Components {
		if c.Name == "example.com/tcstamp" {
			require.Equal(t, "v1.2.0", c.Version)
			for _, p := range c.Properties {
				stamp = append(stamp, p.Name+"="+p.Value)
			}
		}
	}
	require.Equal(t, []string{"workergen:replace=" + replace,
		"workergen:third-party-component=plugin stamp (example.com/tcstamp/stamp)"}, stamp)
	var comps []string
	for _, p := range doc.Metadata.Component.Properties {
		if p.Name == "workergen:component" {
			comps = append(comps, p.Value)
		}
	}
	require.Contains(t, comps, "plugin stamp example.com/tcstamp/stamp example.com/tcstamp@v1.2.0 third-party")
	require.Contains(t, comps, "engine native github.com/workergen/workergen/engines/native")

	if runtime.GOOS != host.OS || runtime.GOARCH != host.Arch {
		t.Skip("the released worker runs on linux/amd64")
	}
	dir := t.TempDir()
	untar(t, a[tg.Archive], dir)
	bin := filepath.Join(dir, release.BaseName("workergen-linux-stamp", st.version, host), "workergen-linux-stamp")

	taskFile := filepath.Join(dir, "task.yml")
	require.NoError(t, os.WriteFile(taskFile, []byte("payload:\n  command: [[\"sh\", \"-c\", \"echo TCSTAMP=$TCSTAMP\"]]\n  maxRunTime: 30\n  stamp: from the acceptance test\n"), 0o644))
	out, err := exec.Command(bin, "run", "--output", filepath.Join(dir, "out"), taskFile).CombinedOutput()
	require.NoError(t, err, string(out))
	log, err := os.ReadFile(filepath.Join(dir, "out", "task.log"))
	require.NoError(t, err, string(out))
	require.Regexp(t, `\] stamp: example stamped task \S+ run 0: from the acceptance test\n`, string(log))
	require.Regexp(t, `(?m)^TCSTAMP=example/\S+/0$`, string(log))

	out, err = exec.Command(bin, "--version").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Regexp(t, `(?m)^  plugin stamp\s+example.com/tcstamp/stamp\s+example.com/tcstamp v1.2.0 => `+regexp.QuoteMeta(replace)+`\s+third-party$`, string(out))

	out, err = exec.Command(bin, "components", "--json").Output()
	require.NoError(t, err)
	var cs []worker.ComponentInfo
	require.NoError(t, json.Unmarshal(out, &cs))
	i := slices.IndexFunc(cs, func(c worker.ComponentInfo) bool { return c.Name == "stamp" })
	require.GreaterOrEqual(t, i, 0, string(out))
	require.Equal(t, worker.ComponentInfo{Kind: "plugin", Name: "stamp", Import: "example.com/tcstamp/stamp",
		Module: "example.com/tcstamp", Version: "v1.2.0", Replace: replace, ThirdParty: true}, cs[i])
	for _, c := range cs {
		if c.Name != "stamp" {
			require.False(t, c.ThirdParty, c.Name)
			require.True(t, strings.HasPrefix(c.Import, "github.com/workergen/workergen/"), c.Import)
		}
	}
}
