package build_test

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"debug/gosym"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/gen/build"
)

const module = "github.com/workergen/workergen"

// Build runs one goroutine per target; none may outlive it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "no go.mod above the test directory")
		dir = parent
	}
}

func TestProfileArg(t *testing.T) {
	require.Equal(t, "linux-native", build.ProfileArg("profile=linux-native"))
	require.Equal(t, "linux-native", build.ProfileArg("linux-native"))
	require.Equal(t, "hello", build.ProfileArg(" profile=hello "))
}

func TestVersionInfo(t *testing.T) {
	v, c := build.VersionInfo(context.Background(), repoRoot(t))
	if c == "unknown" {
		t.Skip("not a git checkout")
	}
	require.Regexp(t, `^[0-9a-f]{40}$`, c)
	require.Regexp(t, `^(\d+\.\d+\.\d+|0\.0\.0-dev\+[0-9a-f]{12})$`, v)
	require.Contains(t, build.LDFlags(v, c), "-X github.com/workergen/workergen/worker.version="+v)
}

func TestUnknownProfile(t *testing.T) {
	_, err := build.Build(context.Background(), build.Options{Root: repoRoot(t), Profile: "nope"})
	require.ErrorIs(t, err, gen.ErrUnknownProfile)
	require.ErrorContains(t, err, "known profiles are")
}

// TestBuildEveryProfile generates and builds every shipped profile for
// every target it declares (CGO_ENABLED=0, cross-compiled).
func TestBuildEveryProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every profile for every target; skipped with -short")
	}
	root := repoRoot(t)
	names, err := gen.KnownProfiles(root)
	require.NoError(t, err)
	// Not the checkout's dist/: a developer's binaries stay as they are.
	dist := t.TempDir()
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			p, err := gen.Resolve(root, name)
			require.NoError(t, err)
			res, err := build.Build(context.Background(), build.Options{Root: root, Profile: name, DistDir: dist, Version: "1.2.3", Commit: "0123456789abcdef"})
			require.NoError(t, err)
			require.Len(t, res.Binaries, len(p.Targets))
			for i, b := range res.Binaries {
				require.Equal(t, p.Targets[i], b.Target)
				require.Equal(t, filepath.Join(dist, name, "bin", b.Target.BinaryName(p.Binary)), b.Path)
				info, err := buildinfo.ReadFile(b.Path)
				require.NoError(t, err, b.Path)
				settings := map[string]string{}
				for _, s := range info.Settings {
					settings[s.Key] = s.Value
				}
				require.Equal(t, "0", settings["CGO_ENABLED"], b.Path)
				require.Equal(t, "true", settings["-trimpath"], b.Path)
				require.Equal(t, build.Tags, settings["-tags"], b.Path)
				require.Equal(t, b.Target.OS, settings["GOOS"])
				require.Equal(t, b.Target.Arch, settings["GOARCH"])
				require.Equal(t, module+"/"+gen.DistDir+"/"+name, info.Path)
			}
		})
	}
}

// TestHelloLinksOnlyChosenCode checks the hello binary: its build info
// lists no CUE and no container client module, and its function table
// (pclntab, present even in stripped binaries) holds the hello engine and
// no other engine, no plugin, no generator and no CUE/Docker code.
func TestHelloLinksOnlyChosenCode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the hello worker; skipped with -short")
	}
	root := repoRoot(t)
	host := gen.Target{OS: "linux", Arch: "amd64"}
	dist := t.TempDir()
	res, err := build.Build(context.Background(), build.Options{Root: root, Profile: "hello", DistDir: dist, Targets: []gen.Target{host}})
	require.NoError(t, err)
	bin := res.Binaries[0].Path
	first, err := os.ReadFile(bin)
	require.NoError(t, err)
	// Same inputs, same bytes: -trimpath, -buildid= and -buildvcs=false.
	require.NoError(t, os.Remove(bin))
	_, err = build.Build(context.Background(), build.Options{Root: root, Profile: "hello", DistDir: dist, Targets: []gen.Target{host}})
	require.NoError(t, err)
	second, err := os.ReadFile(bin)
	require.NoError(t, err)
	require.True(t, bytes.Equal(first, second), "rebuilding the hello worker gave different bytes")

	info, err := buildinfo.ReadFile(bin)
	require.NoError(t, err)
	for _, dep := range info.Deps {
		for _, banned := range []string{"cuelang.org/", "github.com/moby/", "github.com/docker/", "github.com/dave/jennifer", "github.com/magefile/"} {
			require.False(t, strings.HasPrefix(dep.Path, banned), "hello links module %s", dep.Path)
		}
	}

	funcs := functionNames(t, bin)
	var hello, worker bool
	for _, fn := range funcs {
		hello = hello || strings.HasPrefix(fn, module+"/engines/hello.")
		worker = worker || strings.HasPrefix(fn, module+"/worker.")
		for _, banned := range []string{
			"cuelang.org/", "github.com/moby/", "github.com/docker/",
			module + "/engines/native.", module + "/engines/container.", module + "/engines/mock.",
			module + "/plugins/", module + "/gen.", module + "/gen/",
		} {
			require.False(t, strings.HasPrefix(fn, banned), "hello binary contains %s", fn)
		}
	}
	require.True(t, hello, "no hello engine function in the binary")
	require.True(t, worker, "no worker runtime function in the binary")

	if runtime.GOOS == host.OS && runtime.GOARCH == host.Arch {
		out, err := exec.Command(bin, "--version").CombinedOutput()
		require.NoError(t, err, string(out))
		require.Contains(t, string(out), "hello")
	}
}

// functionNames reads the function table of an ELF Go binary.
func functionNames(t *testing.T, path string) []string {
	f, err := elf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	pclnSec := f.Section(".gopclntab")
	textSec := f.Section(".text")
	require.NotNil(t, pclnSec, "no .gopclntab in %s", path)
	require.NotNil(t, textSec)
	pcln, err := pclnSec.Data()
	require.NoError(t, err)
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(pcln, textSec.Addr))
	require.NoError(t, err)
	names := make([]string, 0, len(tab.Funcs))
	for _, fn := range tab.Funcs {
		names = append(names, fn.Name)
	}
	require.NotEmpty(t, names)
	return names
}

// BenchmarkBuildLinuxNative measures `mage build profile=linux-native`'s
// work (generate, then build both targets) with a warm build cache, and
// reports the stripped linux/amd64 binary's size.
func BenchmarkBuildLinuxNative(b *testing.B) {
	root := repoRoot(b)
	dist := b.TempDir()
	var res *build.Result
	var err error
	for b.Loop() {
		if res, err = build.Build(context.Background(), build.Options{Root: root, Profile: "linux-native", DistDir: dist}); err != nil {
			b.Fatal(err)
		}
	}
	for _, bin := range res.Binaries {
		if bin.Target == (gen.Target{OS: "linux", Arch: "amd64"}) {
			st, err := os.Stat(bin.Path)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(st.Size()), "bytes/linux-amd64")
		}
	}
}
