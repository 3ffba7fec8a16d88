package gen_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"

	"github.com/workergen/workergen/gen"
)

// TestThirdPartyFromModuleProxy: without a replace, the component's
// module is fetched at its version through GOPROXY (here a file:// proxy
// serving examples/thirdparty as example.com/tcstamp v1.2.0, backed by the
// machine's module cache, so no network), its CUE is read from the module
// cache, and the dist module requires it with its go.sum hashes, complete
// enough for the go command to load every package of the worker. Errors
// point into the module (<module>@<version>/...) or name what is missing.
func TestThirdPartyFromModuleProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a module cache and runs go mod tidy")
	}
	root := repoRoot(t)
	proxy := t.TempDir()
	mv := module.Version{Path: "example.com/tcstamp", Version: "v1.2.0"}
	dir := filepath.Join(proxy, "example.com", "tcstamp", "@v")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	gomod, err := os.ReadFile(filepath.Join(root, "examples", "thirdparty", "go.mod"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "list"), []byte("v1.2.0\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "v1.2.0.info"), []byte(`{"Version":"v1.2.0","Time":"2026-01-01T00:00:00Z"}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "v1.2.0.mod"), gomod, 0o644))
	zf, err := os.Create(filepath.Join(dir, "v1.2.0.zip"))
	require.NoError(t, err)
	require.NoError(t, modzip.CreateFromDir(zf, mv, filepath.Join(root, "examples", "thirdparty")))
	require.NoError(t, zf.Close())

	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	require.NoError(t, err)
	cache := strings.TrimSpace(string(out))
	t.Setenv("GOPROXY", "file://"+filepath.ToSlash(proxy)+",file://"+filepath.ToSlash(filepath.Join(cache, "cache", "download")))
	t.Setenv("GOMODCACHE", t.TempDir())
	t.Setenv("GONOSUMDB", "example.com")
	t.Setenv("GOFLAGS", "-modcacherw")

	example, err := os.ReadFile(filepath.Join(root, exampleProfile))
	require.NoError(t, err)
	name := fmt.Sprintf("proxy-test-%d", os.Getpid())
	profile := strings.Replace(string(example), `name:        "linux-stamp"`, `name: "`+name+`"`, 1)
	profile = strings.Replace(profile, "\t\t\treplace: \".\"\n", "", 1)
	write := func(content string) string {
		f := filepath.Join(t.TempDir(), name+".cue")
		require.NoError(t, os.WriteFile(f, []byte(content), 0o644))
		return f
	}
	dist := t.TempDir()
	outDir := filepath.Join(dist, name)

	p, err := gen.GenerateIn(context.Background(), root, write(profile), "", dist)
	require.NoError(t, err)
	require.Contains(t, string(p.ProfileJSON), `"goImport": "example.com/tcstamp/stamp"`)
	require.NotContains(t, string(p.ProfileJSON), `"replace"`)
	mod, err := os.ReadFile(filepath.Join(outDir, gen.GoModFile))
	require.NoError(t, err)
	require.Contains(t, string(mod), "example.com/tcstamp v1.2.0\n")
	require.NotContains(t, string(mod), "replace example.com/tcstamp")
	sum, err := os.ReadFile(filepath.Join(outDir, gen.GoSumFile))
	require.NoError(t, err)
	require.Contains(t, string(sum), "example.com/tcstamp v1.2.0 h1:")
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Dir = outDir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	list, err := cmd.CombinedOutput()
	require.NoError(t, err, string(list))
	require.Contains(t, string(list), "example.com/tcstamp/stamp\n")

	// A typo in the plugin's config section: did-you-mean from the #Config
	// in the module's CUE.
	_, err = gen.Resolve(root, write(strings.Replace(profile, `label: "example"`, `lable: "example"`, 1)))
	require.ErrorContains(t, err, "lable")
	require.ErrorContains(t, err, `did you mean "label"?`)
	// A version the proxy does not have, a package the module lacks.
	_, err = gen.Resolve(root, write(strings.Replace(profile, `"v1.2.0"`, `"v1.3.0"`, 1)))
	require.ErrorContains(t, err, "cannot resolve module example.com/tcstamp@v1.3.0")
	_, err = gen.Resolve(root, write(strings.Replace(profile, `"example.com/tcstamp/stamp"`, `"example.com/tcstamp/stmp"`, 1)))
	require.ErrorContains(t, err, "module example.com/tcstamp@v1.2.0 (example.com/tcstamp@v1.2.0) has no package example.com/tcstamp/stmp")
}
